"""One-case latency of the Slicer module's Apply vs PyRadiomics alone, on the real lung2 CT.

Apply = the module's Logic on nodes already in a (headless, slicer-core) MRML scene: checks,
MRML -> SimpleITK, radiomics with progress, prediction with a demo bundle, results into a table
node and an RFS chart. The peer is PyRadiomics' own extractor on the same image and mask files
with the same parameter file, measured in the same run, alternating, median of ``--repeats``.

Target: Apply overhead under 10 % of PyRadiomics alone.

Usage: .venv/bin/python benchmarks/slicer_latency.py [--params gist_ct_paper] [--repeats 3]
       [--results benchmarks/results/slicer.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "SlicerGISTRisk"))
sys.path.insert(0, str(REPO / "tests" / "slicer"))  # the application stand-ins and the demo cohort


def _pyradiomics_alone(image: Path, mask: Path, params: Path) -> float:
    import logging

    from radiomics import featureextractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    t = time.perf_counter()
    extractor = featureextractor.RadiomicsFeatureExtractor(str(params))
    extractor.execute(str(image), str(mask), label=1)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="gist_ct_paper")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "slicer.md"))
    args = ap.parse_args()

    import slicer_app_shim

    slicer_app_shim.install()
    from demo_cohort import fit_command, write_demo_cohort, write_fit_config
    from slicer_app_shim import new_scene

    import SlicerGISTRisk
    from gistrisk.radiomics.params import resolve_params
    from SlicerGISTRiskLib import mrml_convert as mc
    from SlicerGISTRiskLib.workflow import CaseInputs

    image, mask = Path(args.data) / "ct" / "lung2_image.nrrd", Path(args.data) / "ct" / "lung2_label.nrrd"
    params = resolve_params(args.params)
    scene = new_scene()
    volume = mc.load_volume_file(scene, image, name="lung2")
    seg = mc.labelmap_file_to_segmentation(scene, mask, volume)
    sid = mc.segment_ids(seg)[0]

    # A demo bundle whose radiomics inputs the parameter file produces (fitted before timing).
    warm = SlicerGISTRisk.SlicerGISTRiskLogic().process(CaseInputs(volume, seg, sid, params="pyradiomics_baseline"))
    tmp = Path(tempfile.mkdtemp(prefix="slicer_bench_"))
    files = write_demo_cohort(tmp, warm.radiomics.features)
    fast = write_fit_config(tmp / "fit.yaml")
    subprocess.run(fit_command(str(Path(sys.executable).with_name("gistrisk")), files, tmp / "model", fast),
                   check=True, capture_output=True)
    clinical = {"tumour_size_cm": "7.0", "mitoses_per_5mm2": "4", "site": "stomach", "rupture": "no"}

    # Warm-up of both paths (imports, PyWavelets/C-extension first use), not timed.
    _pyradiomics_alone(image, mask, params)
    SlicerGISTRisk.SlicerGISTRiskLogic().process(CaseInputs(volume, seg, sid, params=str(params)))

    apply_s, alone_s, parts = [], [], []
    for _ in range(args.repeats):
        alone_s.append(_pyradiomics_alone(image, mask, params))
        logic = SlicerGISTRisk.SlicerGISTRiskLogic()  # fresh: no cached radiomics
        t = time.perf_counter()
        result = logic.process(CaseInputs(volume, seg, sid, bundle_dir=str(tmp / "model"), clinical_values=clinical,
                                          params=str(params), patient_id="LUNG2"))
        logic.writeResults(result)
        apply_s.append(time.perf_counter() - t)
        parts.append(result.timings)
    a, b = statistics.median(apply_s), statistics.median(alone_s)
    overhead = a / b - 1.0
    n_features = len(result.radiomics.features)
    prep = statistics.median(p["prepare_s"] for p in parts)
    pred = statistics.median(p["predict_s"] for p in parts)
    # What Apply adds around the extraction, measured inside each Apply run (less exposed to the
    # run-to-run noise of a shared machine than the difference of two medians).
    fixed = statistics.median(t - p["radiomics_s"] for t, p in zip(apply_s, parts))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores (this sandbox), " \
              f"Python {platform.python_version()}"
    lines = [
        "# SlicerGISTRisk: one-case latency (Apply vs PyRadiomics alone)",
        "",
        f"Machine: {machine}. Case: lung2 (512x512x61 CT, 24,644-voxel tumour), parameter file "
        f"`{params.name}` ({n_features} features), median of {args.repeats} alternating runs "
        "after one untimed warm-up of each.",
        "",
        "| path | median s | runs (s) |",
        "|---|---|---|",
        f"| PyRadiomics alone (`RadiomicsFeatureExtractor.execute` on the files) | {b:.2f} | "
        f"{', '.join(f'{x:.2f}' for x in alone_s)} |",
        f"| Apply through the module's Logic (scene nodes -> prediction -> MRML results) | {a:.2f} | "
        f"{', '.join(f'{x:.2f}' for x in apply_s)} |",
        "",
        f"Ratio Apply / PyRadiomics alone: **{a / b:.3f}** (overhead {overhead:+.1%}; target under +10%).",
        f"Of Apply: checks + MRML->SimpleITK + tumour diameter {prep:.2f} s, prediction {pred:.3f} s "
        f"(medians); everything Apply does besides the extraction itself: {fixed:.2f} s = "
        f"**{fixed / b:.1%}** of PyRadiomics alone.",
        f"1-minute load average at the end of the run: {load:.1f} (other work shared the 2 cores, so single "
        "runs vary; compare the ratio, not the seconds).",
        "",
        f"Command: `.venv/bin/python benchmarks/slicer_latency.py --params {args.params} --repeats {args.repeats}`",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()

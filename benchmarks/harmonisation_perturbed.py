"""Training on perturbed development CTs vs reference-site ComBat vs nothing, on the simulated external scanner.

Issue 14's third option, measured on the image-level demo cohorts that `benchmarks/harmonisation.py` made
(`--root`, one folder per seed with the demo's model, features and CTs). For each seed:

1. every development CT gets one perturbed copy as `gistrisk radiomics robustness` makes them (coarser voxels
   by ``--spacing-factor``, linear interpolation, then Gaussian noise of ``--noise-hu``; seeded per case), the
   tumour mask as drawn (resampled onto the coarser grid by the extraction, nearest neighbour);
2. `gistrisk radiomics extract` on those copies (paper parameters, as the demo);
3. `gistrisk fit` with the demo's configuration on the development cohort, the radiomics table replaced by
   the perturbed copies' features (clinical and slide tables unchanged);
4. `gistrisk validate` of that frozen model on the external cohort's features as extracted.

The perturbation is generic (the robustness defaults), not tuned to the external scanner (2.5 x 2.5 x 3 mm ->
3 x 3 x 4 mm and more noise): tuning it to a shift known only from the external images would use the test
cohort. Printed and appended to `results/harmonisation.md`: external C of each model for none / ComBat (from
`<root>/harmonisation.json`) / perturbed training, and the radiomics score's SD against the development one.

    .venv/bin/python benchmarks/harmonisation_perturbed.py --root /tmp/hs --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import SimpleITK as sitk
from harmonisation import RESULTS, gistrisk

from gistrisk.radiomics.perturb import case_rng, perturb

MODELS = ("clinical", "radiomics", "pathology", "fusion")


def perturbed_manifest(folder: Path, seed: int, noise_hu: float, factor: float) -> Path:
    """One perturbed copy of each development CT, written beside a manifest of them."""
    dev = folder / "cohort" / "development"
    out = folder / "perturbed"
    (out / "ct").mkdir(parents=True, exist_ok=True)
    manifest = pd.read_csv(dev / "radiomics_manifest.csv")
    rows = []
    for i, row in enumerate(manifest.itertuples(index=False)):
        target = out / "ct" / f"{row.patient_id}.nrrd"
        if not target.is_file():
            image = sitk.ReadImage(str(dev / row.image))
            copy = perturb(image, "noise_resample", noise_hu=noise_hu, spacing_factor=factor,
                           rng=case_rng(seed, i, 0, "noise_resample"))
            sitk.WriteImage(copy, str(target), useCompression=True)
        rows.append({"patient_id": row.patient_id, "image": str(target), "mask": str(dev / row.mask),
                     "segment": row.segment})
    path = out / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def one_seed(root: Path, seed: int, noise_hu: float, factor: float, jobs: int) -> dict:
    folder = root / f"seed{seed}"
    started = time.time()
    manifest = perturbed_manifest(folder, seed, noise_hu, factor)
    table = folder / "perturbed" / "development_radiomics.parquet"
    gistrisk("radiomics", "extract", "--manifest", str(manifest), "--out", str(table), "--jobs", str(jobs),
             "--no-progress")
    dev, ext, feats = folder / "cohort" / "development", folder / "cohort" / "external", folder / "features"
    model = folder / "model_perturbed"
    gistrisk("fit", "--outcomes", str(dev / "outcomes.csv"), "-m", f"clinical={dev / 'clinical.csv'}",
             "-m", f"radiomics={table}", "-m", f"pathology={feats / 'development_pathology.parquet'}",
             "--config", str(folder / "work" / "fit_demo.yaml"), "--seed", str(seed), "--jobs", str(jobs),
             "--out", str(model))
    out = folder / "validation_perturbed"
    gistrisk("validate", "--model", str(model), "--outcomes", str(ext / "outcomes.csv"),
             "-m", f"clinical={ext / 'clinical.csv'}", "-m", f"radiomics={feats / 'external_radiomics.parquet'}",
             "-m", f"pathology={feats / 'external_pathology.parquet'}", "--bootstrap", "500", "--seed", str(seed),
             "--out", str(out), "--no-report")
    m = json.loads((out / "metrics.json").read_text())
    rad = m["score_distribution"]["radiomics"]
    return {"seed": seed, "seconds": round(time.time() - started),
            "c_index": {k: m["metrics"].get(k, {}).get("c_index") for k in MODELS},
            "radiomics_score": {"development_sd": rad["development_sd"], "sd": rad["sd"],
                                "outside_p01_p99": rad["outside_development_p01_p99"], "n": rad["n"]},
            "selected_radiomics": json.loads((model / "model.json").read_text())["pipelines"]["radiomics"]["selected"]}


def table(rows: list[dict], before: dict[int, dict]) -> str:
    def f(v):
        return "—" if v is None else f"{v:.3f}"

    lines = ["| seed | model | none | ComBat | perturbed training |", "|---|---|---|---|---|"]
    for r in rows:
        b = before.get(r["seed"], {}).get("c_index", {})
        for k in MODELS:
            none, combat = (b.get(k) or [None, None])[:2]
            lines.append(f"| {r['seed']} | {k} | {f(none)} | {f(combat)} | {f(r['c_index'][k])} |")
    lines += ["", "| seed | radiomics score SD / development SD (same model): none, ComBat, perturbed training "
              "| external patients outside the development p01-p99: none, ComBat, perturbed |", "|---|---|---|"]
    for r in rows:
        b = before.get(r["seed"], {}).get("radiomics_score", {})
        s = r["radiomics_score"]
        ratios = [x / b["development_sd"] for x in b.get("sd", [])] if b else []
        ratios.append(s["sd"] / s["development_sd"])
        outside = [*b.get("outside_p01_p99", []), s["outside_p01_p99"]]
        lines.append(f"| {r['seed']} | {', '.join(f'{x:.2f}' for x in ratios)} | "
                     f"{', '.join(str(x) for x in outside)} (of {s['n']}) |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, required=True, help="folder of seed<S> demo cohorts (harmonisation.py)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--noise-hu", type=float, default=10.0)
    ap.add_argument("--spacing-factor", type=float, default=1.25)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-results", action="store_true", help="print only; do not append to results/")
    args = ap.parse_args()
    before_file = args.root / "harmonisation.json"
    before = {r["seed"]: r for r in json.loads(before_file.read_text())} if before_file.is_file() else {}
    rows = []
    for seed in args.seeds:
        rows.append(one_seed(args.root, seed, args.noise_hu, args.spacing_factor, args.jobs))
        print(json.dumps(rows[-1]), flush=True)
    (args.root / "harmonisation_perturbed.json").write_text(json.dumps(rows, indent=1))
    text = table(rows, before)
    print(text)
    if not args.no_results:
        with RESULTS.open("a", encoding="utf-8") as fh:
            fh.write(f"\n## Training on perturbed development CTs ({time.strftime('%Y-%m-%d')})\n\n"
                     f"`.venv/bin/python benchmarks/harmonisation_perturbed.py --root {args.root} --seeds "
                     f"{' '.join(map(str, args.seeds))}` (noise {args.noise_hu:g} HU, voxels x{args.spacing_factor:g}; "
                     f"none and ComBat columns: the same cohorts' `harmonisation.json`).\n\n{text}\n")


if __name__ == "__main__":
    main()

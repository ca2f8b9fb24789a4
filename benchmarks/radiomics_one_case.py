"""One case, paper parameters: gistrisk spreading the image types over processes vs PyRadiomics' single process.

Cases: simulated GISTs of typical size (5, 7.5 and 10 cm, drawn by the demo's own simulator:
``gistrisk.simulate.ct.simulate_ct`` with the development acquisition, 2.5 x 2.5 x 3 mm, written as NRRD
with a label map), plus PyRadiomics' real lung2 CT (512x512x61) for context. Parameter file
``gist_ct_paper.yaml`` (2 x 2 x 2 mm resampling, Original + Wavelet + LoG x 7 + 5 filters + LBP3D, 2,246
features). Every run is a fresh process, interleaved, ``--repeats`` times; the median is reported.

Measured per case, each side by side with its peer in the same repeat:

* command line: ``gistrisk radiomics extract --image --mask --workers W`` vs PyRadiomics' own CLI
  (``pyradiomics image mask --param``, one process); also the same radiomics sub-command started without
  the top-level ``gistrisk`` command (``from gistrisk.radiomics.cli import app``), which shows what the
  top-level command's start-up adds;
* in a process (what the Slicer module's Apply calls): ``extract_case(..., workers=W)`` vs
  ``RadiomicsFeatureExtractor(params).execute``, timed inside a fresh process around the extraction
  only: first call (cold: PyRadiomics' lazy imports included), and later calls (warm: a later Apply),
  both tools warmed up in one process and timed back to back ``--pairs`` times.

Peak memory: largest resident set of one process of the run, and the largest total over the process tree
at one instant as RSS (counts pages a forked child shares with its parent twice) and as PSS (shared pages
split between the processes sharing them: the memory the run really holds). A control measures what
2 processes gain over 1 on pure CPU work (2.0 on two idle cores; other jobs share this machine) at each
repeat's start and before and after each case; ratios are also given over the cases where it stayed
>= 1.8x. Features are checked: gistrisk with W workers equals gistrisk sequential bit for bit, and
PyRadiomics' CSV to its printed precision.

    .venv/bin/python benchmarks/radiomics_one_case.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
from _control import parallel_headroom

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GISTRISK_SHARED_DATA", REPO.parent / "shared" / "data"))
PARAMS = REPO / "core/gistrisk/radiomics/params/gist_ct_paper.yaml"
FREE = 1.8  # control at or above which two cores were free for the whole block of runs


@dataclass
class Run:
    case: str
    tool: str
    seconds: float
    peak_process_mb: float
    peak_rss_mb: float
    peak_pss_mb: float
    inner: dict = field(default_factory=dict)
    control: float = float("nan")  # the control just before and after this case's runs (the lower)


def _watch(proc: subprocess.Popen, out: dict, stop: threading.Event) -> None:
    """Sample RSS and PSS of the process tree every 0.05 s."""
    root = psutil.Process(proc.pid)
    one = rss = pss = 0
    while not stop.is_set():
        try:
            procs = [root] + root.children(recursive=True)
        except psutil.Error:
            break
        r, p = [], []
        for q in procs:
            try:
                m = q.memory_full_info()
                r.append(m.rss)
                p.append(m.pss)
            except psutil.Error:
                pass
        one, rss, pss = max(one, max(r, default=0)), max(rss, sum(r)), max(pss, sum(p))
        stop.wait(0.05)
    out.update(one=one / 2**20, rss=rss / 2**20, pss=pss / 2**20)


def timed(cmd: list[str], case: str, tool: str) -> Run:
    stop, mem = threading.Event(), {}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    th = threading.Thread(target=_watch, args=(proc, mem, stop), daemon=True)
    th.start()
    out, err = proc.communicate()
    dt = time.perf_counter() - t0
    stop.set()
    th.join()
    if proc.returncode != 0:
        raise SystemExit(f"{tool} on {case} failed ({proc.returncode}):\n{err[-3000:]}")
    inner = json.loads(out.strip().splitlines()[-1]) if tool.startswith("inproc") else {}
    return Run(case, tool, dt, mem["one"], mem["rss"], mem["pss"], inner)


def write_simulated(size_cm: float, folder: Path, seed: int = 7) -> tuple[Path, Path, dict]:
    """One simulated GIST CT (the demo's simulator, development acquisition) as NRRD + label map NRRD."""
    import SimpleITK as sitk

    from gistrisk.simulate.config import DEVELOPMENT
    from gistrisk.simulate.ct import simulate_ct

    case = simulate_ct(np.random.default_rng([seed, int(size_cm * 10)]), size_cm, 0.0, DEVELOPMENT)
    img = sitk.GetImageFromArray(case.hu)
    img.SetSpacing(case.spacing)
    img.SetOrigin(case.origin)
    lab = sitk.GetImageFromArray(case.mask.astype(np.uint8))
    lab.CopyInformation(img)
    image, mask = folder / f"gist{size_cm:g}cm_image.nrrd", folder / f"gist{size_cm:g}cm_label.nrrd"
    sitk.WriteImage(img, str(image), useCompression=True)
    sitk.WriteImage(lab, str(mask), useCompression=True)
    info = {"grid": list(case.hu.shape[::-1]), "spacing": list(case.spacing), "diameter_cm": case.diameter_cm,
            "voxels": int(case.mask.sum())}
    return image, mask, info


def inproc(tool: str, image: str, mask: str, params: str, workers: int, pairs: int) -> None:
    """Inside a fresh process, read the files, then extract. ``ours``/``peer``: twice (cold, warm), printing
    seconds as JSON. ``alternate``: both warmed up, then ``pairs`` times PyRadiomics then gistrisk back to
    back (the least exposed to load changes). Imports are here: a measured process loads only what it runs."""
    import logging

    import radiomics
    import SimpleITK as sitk
    from radiomics import featureextractor

    from gistrisk.radiomics.extract import extract_case

    radiomics.setVerbosity(logging.ERROR)
    img, msk = sitk.ReadImage(image), sitk.ReadImage(mask)
    ex: dict = {}

    def ours():
        return extract_case(img, msk, params, 1, workers=workers).diagnostics.get("gistrisk_parallel")

    def peer():
        ex.setdefault("x", featureextractor.RadiomicsFeatureExtractor(params)).execute(img, msk, label=1)

    def clock(f) -> tuple[float, object]:
        t0 = time.perf_counter()
        out = f()
        return time.perf_counter() - t0, out

    if tool == "alternate":
        peer(), ours()
        got = [(clock(peer)[0], clock(ours)[0]) for _ in range(pairs)]
        print(json.dumps({"pairs": got}))
        return
    f = ours if tool == "ours" else peer
    (cold, info), (warm, _) = clock(f), clock(f)
    print(json.dumps({"cold": cold, "warm": warm, "parallel": info}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="5,7.5,10", help="simulated tumour diameters, cm")
    ap.add_argument("--no-lung2", action="store_true", help="leave out the real lung2 CT")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--params", default=str(PARAMS))
    ap.add_argument("--results", default=str(REPO / "benchmarks/results/radiomics_one_case.md"))
    ap.add_argument("--pairs", type=int, default=2, help="warm pairs per case and repeat (in one process)")
    ap.add_argument("--_inproc", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._inproc:
        return inproc(*args._inproc, params=args.params, workers=args.workers, pairs=args.pairs)

    work = Path(tempfile.mkdtemp(prefix="gistrisk-one-case-"))
    py, w = sys.executable, str(args.workers)
    cases: dict[str, tuple[Path, Path, str]] = {}
    try:
        for s in [float(x) for x in args.sizes.split(",") if x]:
            image, mask, info = write_simulated(s, work)
            cases[f"GIST {s:g} cm (sim.)"] = (image, mask, f"simulated, grid {'x'.join(map(str, info['grid']))} "
                                                             f"at 2.5x2.5x3 mm, diameter {info['diameter_cm']:.1f} cm, "
                                                             f"{info['voxels']:,} tumour voxels")
        if not args.no_lung2 and (DATA / "ct/lung2_image.nrrd").exists():
            cases["lung2 (real)"] = (DATA / "ct/lung2_image.nrrd", DATA / "ct/lung2_label.nrrd",
                                     "real CT 512x512x61 at 0.63x0.63x5 mm, 24,644 tumour voxels")

        def commands(case: str, r: int) -> dict[str, list[str]]:
            image, mask, _ = cases[case]
            d = work / f"r{r}_{case.split()[0]}{case.split()[1]}"
            d.mkdir(exist_ok=True)
            ours = ["radiomics", "extract", "--image", str(image), "--mask", str(mask), "--label", "1",
                    "--params", args.params, "--patient-id", "case"]
            return {
                "pyradiomics CLI": [py, "-c", "from radiomics.scripts import parse_args; parse_args()", str(image),
                                    str(mask), "--param", args.params, "--format", "csv", "--out",
                                    str(d / "peer.csv")],
                f"gistrisk CLI, {w} workers": [py, "-m", "gistrisk", *ours, "--out", str(d / "ours.csv"),
                                               "--workers", w],
                "gistrisk CLI, 1 worker": [py, "-m", "gistrisk", *ours, "--out", str(d / "ours1.csv"),
                                           "--workers", "1"],
                f"radiomics sub-command alone, {w} workers": [
                    py, "-c", "from gistrisk.radiomics.cli import app; app()", *ours[1:],
                    "--out", str(d / "sub.csv"), "--workers", w],
                "inproc pyradiomics": [py, __file__, "--params", args.params, "--_inproc", "peer", str(image),
                                       str(mask)],
                f"inproc gistrisk {w}": [py, __file__, "--params", args.params, "--workers", w, "--_inproc", "ours",
                                         str(image), str(mask)],
                "inproc alternate": [py, __file__, "--params", args.params, "--workers", w, "--pairs",
                                     str(args.pairs), "--_inproc", "alternate", str(image), str(mask)],
            }

        runs: list[Run] = []
        headroom: list[float] = []
        for r in range(args.repeats):
            headroom.append(parallel_headroom(3_000_000))
            print(f"repeat {r + 1}: control, 2 processes vs 1 on pure CPU work: {headroom[-1]:.2f}x", flush=True)
            for case in cases:
                before, block = parallel_headroom(3_000_000), []
                for tool, cmd in commands(case, r).items():
                    run = timed(cmd, case, tool)
                    runs.append(run)
                    block.append(run)
                    extra = ""
                    if "cold" in run.inner:
                        extra = f" (extraction cold {run.inner['cold']:.2f} s, warm {run.inner['warm']:.2f} s)"
                    elif "pairs" in run.inner:
                        extra = " (warm pairs PyRadiomics/gistrisk: " + ", ".join(
                            f"{a:.2f}/{b:.2f}" for a, b in run.inner["pairs"]) + ")"
                    print(f"  {case:18s} {tool:38s} {run.seconds:6.2f} s{extra}, peak process "
                          f"{run.peak_process_mb:.0f} MB, tree RSS {run.peak_rss_mb:.0f} MB / PSS "
                          f"{run.peak_pss_mb:.0f} MB", flush=True)
                control = min(before, parallel_headroom(3_000_000))
                for run in block:
                    run.control = control
                print(f"  {case:18s} control before/after these runs: {control:.2f}x (the lower)", flush=True)
        checks = {}
        for case in cases:
            d = work / f"r0_{case.split()[0]}{case.split()[1]}"
            ours, ours1 = pd.read_csv(d / "ours.csv"), pd.read_csv(d / "ours1.csv")
            peer = pd.read_csv(d / "peer.csv")
            feats = [c for c in ours.columns if c != "patient_id"]
            same = (d / "ours.csv").read_text() == (d / "ours1.csv").read_text() and feats == list(ours1.columns[1:])
            a, b = ours[feats].to_numpy(float)[0], peer[feats].to_numpy(float)[0]
            rel = float(np.nanmax(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))
            checks[case] = (len(feats), same, rel)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def med(case: str, tool: str, attr: str = "seconds", key: str | None = None) -> float:
        xs = [x for x in runs if x.case == case and x.tool == tool]
        return statistics.median(x.inner[key] if key else getattr(x, attr) for x in xs)

    def paired(case: str, tool: str, peer: str, key: str | None = None, free: bool = False) -> list[float]:
        a = [x for x in runs if x.case == case and x.tool == tool]
        b = [x for x in runs if x.case == case and x.tool == peer]
        return [(x.inner[key] / y.inner[key]) if key else x.seconds / y.seconds for x, y in zip(a, b)
                if not free or x.control >= FREE]

    def free_note(xs: list[float]) -> str:
        return f"; free cores: **{statistics.median(xs):.2f}** (n={len(xs)})" if xs else "; free cores: n=0"

    load = os.getloadavg()
    lines = [
        "# One case, paper parameters: gistrisk (image types over processes) vs PyRadiomics",
        "",
        f"Machine: this sandbox, {psutil.cpu_count(logical=True)}-core CPU ({platform.processor() or platform.machine()}), "
        f"{psutil.virtual_memory().total / 2**30:.0f} GB RAM, no GPU; Python {platform.python_version()}. "
        f"Other engineers' jobs share the CPU (load average at the end {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}); "
        f"control, 2 processes vs 1 on pure CPU work in each repeat: "
        f"{', '.join(f'{h:.2f}x' for h in headroom)} (2.0x on two idle cores).",
        "",
        f"Parameters `{Path(args.params).name}`; {args.workers} workers; median of {args.repeats} interleaved "
        "repeats, each a fresh process. Cases:",
        "",
    ]
    lines += [f"- {c}: {desc}" for c, (_, _, desc) in cases.items()]
    lines += [
        "",
        f"Command: `.venv/bin/python benchmarks/radiomics_one_case.py --repeats {args.repeats}`",
        "",
        f"Ratio column: ratio of the medians (each repeat's ratio); *free cores*: median of the repeats whose control "
        f"before and after that case was >= {FREE}x, i.e. two cores were really free (n = how many).",
        "",
        "| case | run | wall s (median) | ratio to PyRadiomics | peak process MB | peak tree RSS MB "
        "| peak tree PSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        for tool, peer in (("pyradiomics CLI", None), (f"gistrisk CLI, {w} workers", "pyradiomics CLI"),
                           ("gistrisk CLI, 1 worker", "pyradiomics CLI"),
                           (f"radiomics sub-command alone, {w} workers", "pyradiomics CLI")):
            ratio = "" if peer is None else (f"{med(case, tool) / med(case, peer):.2f} "
                                             f"({', '.join(f'{x:.2f}' for x in paired(case, tool, peer))})"
                                             f"{free_note(paired(case, tool, peer, free=True))}")
            lines.append(f"| {case} | {tool} | {med(case, tool):.2f} | {ratio} | {med(case, tool, 'peak_process_mb'):.0f} "
                         f"| {med(case, tool, 'peak_rss_mb'):.0f} | {med(case, tool, 'peak_pss_mb'):.0f} |")
        p, o = med(case, "inproc pyradiomics", key="cold"), med(case, f"inproc gistrisk {w}", key="cold")
        lines.append(f"| {case} | in a process, extraction only, first call (cold): PyRadiomics `execute` {p:.2f} s, "
                     f"`extract_case(workers={w})` {o:.2f} s | | {o / p:.2f} "
                     f"({', '.join(f'{x:.2f}' for x in paired(case, f'inproc gistrisk {w}', 'inproc pyradiomics', 'cold'))})"
                     f"{free_note(paired(case, f'inproc gistrisk {w}', 'inproc pyradiomics', 'cold', free=True))} "
                     f"| {med(case, f'inproc gistrisk {w}', 'peak_process_mb'):.0f} vs "
                     f"{med(case, 'inproc pyradiomics', 'peak_process_mb'):.0f} "
                     f"| {med(case, f'inproc gistrisk {w}', 'peak_rss_mb'):.0f} vs "
                     f"{med(case, 'inproc pyradiomics', 'peak_rss_mb'):.0f} "
                     f"| {med(case, f'inproc gistrisk {w}', 'peak_pss_mb'):.0f} vs "
                     f"{med(case, 'inproc pyradiomics', 'peak_pss_mb'):.0f} |")
        alt = [x for x in runs if x.case == case and x.tool == "inproc alternate"]
        pairs = [pr for x in alt for pr in x.inner["pairs"]]
        ratios = sorted(b / a for a, b in pairs)
        free = [b / a for x in alt if x.control >= FREE for a, b in x.inner["pairs"]]
        lines.append(f"| {case} | in a process, extraction only, later calls (warm), back to back: PyRadiomics "
                     f"{statistics.median(a for a, _ in pairs):.2f} s, gistrisk {statistics.median(b for _, b in pairs):.2f} s "
                     f"| | {statistics.median(ratios):.2f} (range {ratios[0]:.2f}-{ratios[-1]:.2f}, {len(ratios)} pairs)"
                     f"{free_note(free)} | | | |")
    lines += ["", "Checks (first repeat): " + "; ".join(
        f"{c}: {n} features, {w} workers == 1 worker bit for bit: {'yes' if same else 'NO'}, max relative "
        f"difference to PyRadiomics' CSV {rel:.1e}" for c, (n, same, rel) in checks.items()), ""]
    par = [x.inner.get("parallel") for x in runs if x.tool == f"inproc gistrisk {w}" and x.inner.get("parallel")]
    if par:
        lines += [f"Parallel runs (in-process): workers used {sorted({p['workers'] for p in par})}, units "
                  f"{sorted({p['units'] for p in par})}, notes {sorted({n for p in par for n in p['notes']}) or 'none'}.",
                  ""]
    text = "\n".join(lines)
    print("\n" + text)
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(text)


if __name__ == "__main__":
    main()

"""Reference-site ComBat on the simulated external scanner: external C-indices, frozen vs harmonised.

For each seed, the image-level demo cohort (`gistrisk demo --seed S`: development CTs at 2.5 x 2.5 x 3 mm,
external CTs from the simulator's second scanner, 3 x 3 x 4 mm and more noise; slides and clinical
tables) is simulated, extracted and fitted by the demo itself (skipped when the folder already holds a
model), then `gistrisk validate --harmonise auto` scores the external cohort with the frozen bundle twice:
features as extracted, and radiomics features mapped onto the development cohort's by a site estimated
from the external cohort's own features. Printed and written: each model's external C-index both ways,
the radiomics score's SD against the development cohort's (the frozen model's own development scores,
and out of fold) and how many external patients fall outside the development 1st-99th percentiles.

    .venv/bin/python benchmarks/harmonisation.py --seeds 0 1 2 --root /tmp/hs
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "harmonisation.md"
MODELS = ("clinical", "radiomics", "pathology", "fusion", "modified_nih")


def gistrisk(*args: str) -> None:
    run = subprocess.run([sys.executable, "-m", "gistrisk", *args], capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"gistrisk {args[0]} failed:\n{run.stderr[-3000:]}")


def one_seed(root: Path, seed: int, patients: int, external: int) -> dict:
    folder = root / f"seed{seed}"
    started = time.time()
    if not (folder / "model" / "model.json").is_file():
        gistrisk("demo", "--out", str(folder), "--seed", str(seed), "--patients", str(patients),
                 "--external", str(external))
    ext, feats = folder / "cohort" / "external", folder / "features"
    out = folder / "validation_harmonised"
    gistrisk("validate", "--model", str(folder / "model"), "--outcomes", str(ext / "outcomes.csv"),
             "-m", f"clinical={ext / 'clinical.csv'}", "-m", f"radiomics={feats / 'external_radiomics.parquet'}",
             "-m", f"pathology={feats / 'external_pathology.parquet'}", "--harmonise", "auto",
             "--bootstrap", "500", "--seed", str(seed), "--out", str(out), "--no-report")
    m = json.loads((out / "metrics.json").read_text())
    c = {k: (m["metrics"].get(k, {}).get("c_index"), m["harmonised"]["metrics"].get(k, {}).get("c_index"))
         for k in MODELS}
    rad = (m["score_distribution"]["radiomics"], m["harmonised"]["score_distribution"]["radiomics"])
    return {"seed": seed, "folder": str(folder), "seconds": round(time.time() - started), "c_index": c,
            "radiomics_score": {"development_sd": rad[0]["development_sd"],
                                "development_sd_out_of_fold": rad[0]["development_sd_out_of_fold"],
                                "sd": [rad[0]["sd"], rad[1]["sd"]],
                                "outside_p01_p99": [rad[0]["outside_development_p01_p99"],
                                                    rad[1]["outside_development_p01_p99"]], "n": rad[0]["n"]}}


def table(rows: list[dict]) -> str:
    def f(v):
        return "—" if v is None else f"{v:.3f}"
    head = "| seed | " + " | ".join(f"{k}: frozen / harmonised" for k in MODELS) + \
        " | radiomics score SD: dev (apparent, OOF) / ext frozen / ext harmonised | outside dev 1st-99th |"
    lines = [head, "|" + "---|" * (len(MODELS) + 3)]
    for r in rows:
        s = r["radiomics_score"]
        lines.append(f"| {r['seed']} | " + " | ".join(f"{f(a)} / {f(b)}" for a, b in r["c_index"].values()) +
                     f" | ({s['development_sd']:.2f}, {s['development_sd_out_of_fold']:.2f}) / {s['sd'][0]:.2f} / "
                     f"{s['sd'][1]:.2f} | {s['outside_p01_p99'][0]} -> {s['outside_p01_p99'][1]} of {s['n']} |")
    means = {k: [sum(r["c_index"][k][i] for r in rows) / len(rows) if all(r["c_index"][k][i] is not None
                                                                            for r in rows) else None
                 for i in (0, 1)] for k in MODELS}
    lines.append("| mean | " + " | ".join(f"{f(a)} / {f(b)}" for a, b in means.values()) + " | | |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--root", type=Path, default=Path("harmonisation-study"))
    ap.add_argument("--patients", type=int, default=100)
    ap.add_argument("--external", type=int, default=50)
    args = ap.parse_args()
    rows = [one_seed(args.root, s, args.patients, args.external) for s in args.seeds]
    text = table(rows)
    print(text)
    (args.root / "harmonisation.json").write_text(json.dumps(rows, indent=1))
    print(f"rows written to {args.root / 'harmonisation.json'}; copy the table into {RESULTS}")


if __name__ == "__main__":
    main()

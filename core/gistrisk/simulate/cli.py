"""`gistrisk simulate` and `gistrisk demo`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from tqdm import tqdm

from gistrisk.simulate.demo_settings import DemoSettings

# The simulator and the demo (gistrisk.simulate.study, .demo) are imported inside the commands: they add
# about 1.9 s to `gistrisk --help` and `gistrisk simulate --help` (measured: 0.1 s -> 2.0 s for this module).


def simulate(
    out: Path = typer.Option(..., "--out", help="Folder to write the cohorts into."),
    patients: int = typer.Option(40, "--patients", min=1, help="Development cohort size."),
    external: int = typer.Option(20, "--external", min=0, help="External cohort size (0 = none)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random step."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes making the images."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="Replace a different simulation already in --out."),
) -> None:
    """Simulate a development and an external GIST cohort with known ground truth.

    Writes CT volumes with Slicer segmentations, pyramidal H&E slides with QuPath annotations,
    a clinical table and RFS outcomes drawn from a known Cox model, plus the true linear
    predictor and the oracle C-index. Re-running the same command resumes.
    """
    from gistrisk.simulate.study import simulate_cohort

    with tqdm(total=patients + external, unit="patient", desc="simulate") as bar:
        paths = simulate_cohort(out, patients, external, seed, workers=workers, overwrite=overwrite,
                                progress=bar.update)
    rec = json.loads(paths["cohort_json"].read_text(encoding="utf-8"))
    for name, c in rec["cohorts"].items():
        oracle = "n/a (no events)" if c["oracle_c_index"] is None else f"{c['oracle_c_index']:.3f}"
        typer.echo(f"{name}: {c['n']} patients ({c['n_ct']} CT, {c['n_wsi']} slides, "
                   f"{c['n_annotated']} annotated), {c['events']} events, "
                   f"censored {c['censored_fraction']:.0%}, oracle C-index {oracle}")
        if c["failures"]:
            typer.secho(f"  {c['failures']} image(s) failed: see {out / name / 'failures.csv'}",
                        fg="yellow", err=True)
    typer.echo(f"written to {out} (summary: {paths['cohort_json']})")


def demo(
    out: Path = typer.Option(Path("gistrisk-demo"), "--out", help="Folder for everything the demo writes."),
    patients: int = typer.Option(100, "--patients", min=40,
                                 help="Development cohort size (fusion needs enough patients with all three)."),
    external: int = typer.Option(50, "--external", min=10, help="External cohort size."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random step."),
    jobs: int = typer.Option(2, "--jobs", min=1, help="Processes per step."),
    epochs: int = typer.Option(2, "--epochs", min=1, help="Tissue-classifier epochs (paper: 30)."),
    weights: Path = typer.Option(None, "--weights", help="ResNet50 ImageNet weights file, if you have one."),
) -> None:
    """Run the whole pipeline on a simulated cohort and print where the report is.

    Simulates a development and an external cohort, extracts radiomics, tiles the annotated
    slides, trains the tissue classifier briefly, extracts slide features, fits the unimodal and
    fused models, validates them on the external cohort and writes the HTML report. The settings
    shrunk for speed are printed next to the paper's.
    """
    from gistrisk.simulate.demo import run_demo

    settings = DemoSettings(patients=patients, external=external, seed=seed, jobs=jobs, epochs=epochs,
                            weights=weights)
    summary = run_demo(out, settings, echo=typer.echo)
    typer.echo("")
    typer.echo("settings shrunk for a 2-core CPU (demo | paper):")
    for row in summary["settings"]:
        typer.echo(f"  {row['setting']:<17} {row['demo']} | {row['paper']}")
    oracle = summary["oracle_c_index"]
    typer.echo(f"oracle C-index (true linear predictor): development {oracle.get('development')}, "
               f"external {oracle.get('external')}")
    for name, c in _c_indices(summary["validation_metrics"]).items():
        where, _, model = name.rpartition(".")
        label = {"metrics": "external", "development_cv": "development (CV)",
                 "development_cv.same_patients_as_fusion": "dev. (CV), fusion's patients"}.get(where, where)
        if where.startswith("development_cv.selection_comparison."):
            label, model = f"dev. (CV), {where.rsplit('.', 1)[1]} selection", model
        typer.echo(f"  C-index {label or 'external':<17} {model:<13} {c}")
    failed = [st for st in summary["steps"] if st["status"] != "ok"]
    for st in failed:
        typer.secho(f"  step {st['name']}: {st['status']} {st['message']}", fg="yellow", err=True)
    typer.echo(f"demo finished in {summary['seconds']:.0f} s; outputs in {out}")
    if summary["report"]:
        typer.echo(f"report: {summary['report']}")
    else:
        typer.secho("no report was written (see the failed steps above)", fg="red", err=True)
        raise typer.Exit(1)


def _c_indices(metrics: object, prefix: str = "") -> dict[str, str]:
    """Every ``c_index`` found in validate's metrics.json, keyed by the path of names to it."""
    found: dict[str, str] = {}
    if isinstance(metrics, dict):
        if isinstance(metrics.get("c_index"), (int, float)):
            ci = metrics.get("c_index_ci")
            found[prefix or "model"] = f"{metrics['c_index']:.3f}" + (
                f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if isinstance(ci, list) and len(ci) == 2
                and all(isinstance(v, (int, float)) for v in ci) else "")
        for k, v in metrics.items():
            if isinstance(v, dict):
                found.update(_c_indices(v, f"{prefix}.{k}" if prefix else str(k)))
    return found

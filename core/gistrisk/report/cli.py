"""`gistrisk report`: the cohort report from a validation folder (metrics.json + predictions.csv)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from gistrisk.errors import InputError
from gistrisk.paths import check_output
from gistrisk.report.cohort_report import write_cohort_report
from gistrisk.survival.model import MultimodalRiskModel
from gistrisk.tables import load_outcomes, read_table


def report(
    validation: Annotated[Path, typer.Option(help="Folder written by `gistrisk validate` (metrics.json, predictions.csv)")],
    out: Annotated[Path, typer.Option(help="HTML file to write")],
    model: Annotated[Optional[Path], typer.Option(help="Model bundle folder (default: the one validate recorded)")] = None,
    outcomes: Annotated[Optional[Path], typer.Option(help="Outcomes of the validation cohort "
                                                          "(default: the table validate recorded)")] = None,
    clinical: Annotated[Optional[Path], typer.Option(help="Raw clinical table of the validation cohort (Table 1, NIH)")] = None,
    dev_outcomes: Annotated[Optional[Path], typer.Option(help="Development outcomes (full Table 1 column)")] = None,
    dev_clinical: Annotated[Optional[Path], typer.Option(help="Development clinical table (Table 1, NIH C-index)")] = None,
    figures: Annotated[Optional[Path], typer.Option(help="Also save every figure as PNG in this folder")] = None,
    title: Annotated[str, typer.Option(help="Report title")] = "GIST recurrence-free survival: multimodal model report",
    time_unit: Annotated[Optional[str], typer.Option(
        help="Unit of the outcomes' times (months, days, weeks, years); default: what validate and fit recorded")] = None,
) -> None:
    """Write the self-contained HTML cohort report (Table 1, hazard ratios, C-index, KM, td-AUC,
    calibration, decision curves, nomogram, fusion formula, methods).

    Example: gistrisk report --model model/ --validation report/ --clinical ext/clinical.csv --out report.html
    """
    check_output(out, kind="file", inputs=[validation, model, outcomes, clinical, dev_outcomes, dev_clinical])
    mfile = validation / "metrics.json"
    pfile = validation / "predictions.csv"
    for f in (mfile, pfile):
        if not f.is_file():
            raise InputError("not found; run `gistrisk validate --out DIR` first and pass DIR as --validation",
                             file=str(f))
    try:
        doc = json.loads(mfile.read_text(encoding="utf-8"))
        metrics = doc["metrics"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise InputError(f"not a metrics.json from `gistrisk validate` ({type(e).__name__}: {e})", file=str(mfile)) from e
    prov = doc.get("provenance") or {}
    model = model or _recorded(prov, "model", "--model", mfile)
    outcomes = outcomes or _recorded(prov, "outcomes", "--outcomes", mfile)
    params = prov.get("parameters") or {}
    m = MultimodalRiskModel.load(model)
    pred = read_table(pfile)
    unit = time_unit or params.get("time_unit")
    dev_unit = time_unit or (m.info_.get("inputs") or {}).get("time_unit")
    path = write_cohort_report(
        out, model=m, metrics=metrics, predictions=pred, outcomes=load_outcomes(outcomes, unit),
        clinical=read_table(clinical) if clinical else None,
        dev_outcomes=load_outcomes(dev_outcomes, dev_unit) if dev_outcomes else None,
        dev_clinical=read_table(dev_clinical) if dev_clinical else None, title=title,
        bootstrap=params.get("bootstrap"), validation_seed=params.get("seed"), figures_dir=figures)
    typer.echo(f"report written to {path}")


def _recorded(prov: dict, key: str, option: str, mfile: Path) -> Path:
    val = prov.get(key)
    if not val:
        raise InputError(f"no {key} recorded by validate; pass {option}", file=str(mfile))
    p = Path(val)
    if not p.exists():
        raise InputError(f"the {key} validate recorded ({p}) is not there any more; pass {option}", file=str(mfile))
    return p

"""Per-patient reports for every patient of a prediction run (what `predict --report-dir` calls).

A patient whose report fails is recorded in ``index.csv`` with the reason and the others go on;
rerunning skips reports already written unless ``overwrite`` is set.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from gistrisk.atomic import write_table
from gistrisk.clinical.nih import nih_categories
from gistrisk.errors import GistRiskError
from gistrisk.report.patient import write_patient_report

log = logging.getLogger(__name__)
ID = "patient_id"
CURVE_MONTHS = np.arange(0.0, 121.0, 1.0)


def report_name(patient_id: str) -> str:
    """A file name safe on every platform for one patient's report."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(patient_id)) + ".html"


def write_patient_reports(out_dir: str | Path, *, model, tables: dict[str, pd.DataFrame],
                          clinical: pd.DataFrame | None = None, months=CURVE_MONTHS,
                          overwrite: bool = False, harmonisation: str = "") -> pd.DataFrame:
    """Write ``<out_dir>/<patient_id>.html`` for every predicted patient and ``<out_dir>/index.csv``.

    Parameters
    ----------
    out_dir : folder for the reports
    model : MultimodalRiskModel
    tables : modality -> feature table (as for ``model.predict``)
    clinical : raw clinical table (patient_id column or index) for the NIH category and the input list;
        defaults to ``tables["clinical"]``
    months : time grid of the predicted RFS curve, shape (k,)
    harmonisation : what each report says about feature harmonisation (``predict``'s column)

    Returns
    -------
    DataFrame (patient_id, report, status, error), also written as ``index.csv``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pred = model.predict(tables).set_index(ID)
    pred["harmonisation"] = harmonisation
    curves = model.predict_survival(tables, months)
    clin = clinical if clinical is not None else tables.get("clinical")
    if clin is not None and ID in clin.columns:
        clin = clin.assign(**{ID: clin[ID].astype(str)}).set_index(ID)
    nih = nih_categories(clin) if clin is not None else None
    rows = []
    for pid, row in pred.iterrows():
        path = out_dir / report_name(pid)
        if path.is_file() and not overwrite:
            rows.append({ID: pid, "report": path.name, "status": "exists", "error": ""})
            continue
        try:
            feats = clin.loc[pid].to_dict() if clin is not None and pid in clin.index else None
            write_patient_report(path, model=model, prediction=row, patient_id=str(pid),
                                 survival_curve=(np.asarray(months, float), curves.loc[pid].to_numpy(float)),
                                 modified_nih=nih.get(pid) if nih is not None else None, features=feats)
            rows.append({ID: pid, "report": path.name, "status": "written", "error": ""})
        except (GistRiskError, ValueError, KeyError) as e:
            log.warning("patient %s: report not written (%s: %s)", pid, type(e).__name__, e)
            rows.append({ID: pid, "report": "", "status": "failed", "error": f"{type(e).__name__}: {e}"})
    index = pd.DataFrame(rows, columns=[ID, "report", "status", "error"])
    write_table(out_dir / "index.csv", index)
    return index

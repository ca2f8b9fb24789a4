"""Export report: the per-patient HTML.

With a prediction, the page is the one the command line writes
(``gistrisk.report.write_patient_report``); a radiomics-only result (no model
bundle chosen) gets :func:`write_minimal_patient_report`, a small
self-contained page with the features and their provenance.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import matplotlib

from gistrisk.atomic import write_text
from gistrisk.provenance import provenance
from gistrisk.report import write_patient_report

from .workflow import CaseResult

# matplotlib.pyplot is imported inside _curve_png, after choosing the Agg backend when none is chosen yet:
# imported here it would pick its backend first (in Slicer, the application's).


def export_report(result: CaseResult, path: str | Path) -> Path:
    """Write the per-patient HTML report for a case; returns its path."""
    p = result.prediction
    if p is None or p.model is None:
        return write_minimal_patient_report(result, path)
    return Path(write_patient_report(
        path, model=p.model, prediction=p.prediction,
        survival_curve=(p.curve["time"].to_numpy(), p.curve["survival"].to_numpy()),
        modified_nih=p.nih, patient_id=result.patient_id, features=report_inputs(result)))


def report_inputs(result: CaseResult) -> dict[str, Any]:
    """What the report lists as inputs: clinical values, the model's radiomics features, provenance."""
    p = result.prediction
    out: dict[str, Any] = {k: v for k, v in (p.clinical if p else {}).items() if v is not None}
    out["largest diameter (mm), from the segment"] = round(result.diameter_mm, 1)
    used = (getattr(p.model, "input_columns_", {}) or {}).get("radiomics", []) if p else []
    out.update({k: result.radiomics.features[k] for k in used if k in result.radiomics.features})
    src = result.radiomics.provenance.get("pyradiomics", {})
    out["PyRadiomics"] = f"{src.get('provider', '?')} {src.get('version', '?')}"
    out["radiomics parameter file"] = Path(str(result.radiomics.provenance.get("params_file", ""))).name
    for w in (p.warnings if p else []):
        out.setdefault("warning", w)
    return out


def write_minimal_patient_report(result: CaseResult, path: str | Path) -> Path:
    """A minimal self-contained HTML: the answer, the RFS curve, inputs, provenance. Temporary writer."""
    path = Path(path)
    s = result.summary()
    p = result.prediction
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
                   for k, v in s.items() if k not in ("pyradiomics", "warnings"))
    warnings = "".join(f"<li>{html.escape(w)}</li>" for w in s.get("warnings", []))
    scores = ""
    if p is not None:
        scores = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>"
                         for k, v in p.prediction.items() if k.startswith("score_"))
    features = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.6g}</td></tr>"
                       for k, v in sorted(result.radiomics.features.items()))
    prov = provenance(parameters={"params_file": result.radiomics.provenance.get("params_file")},
                      pyradiomics=result.radiomics.provenance.get("pyradiomics"),
                      params_sha256=result.radiomics.provenance.get("params_sha256"))
    prov_rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>"
                        for k, v in _flatten(prov).items())
    img = _curve_png(result)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>GIST RFS risk: {html.escape(result.patient_id)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}th{{text-align:left;padding-right:1em}}
td,th{{border-bottom:1px solid #ddd}}.warn{{color:#a40}}</style></head><body>
<h1>Recurrence-free survival after GIST surgery</h1>
<p>Research use only: a model estimate to discuss with the tumour board, not a diagnosis.</p>
<h2>Result</h2><table>{rows}</table>
<ul class="warn">{warnings}</ul>
<h2>Unimodal scores</h2><table>{scores}</table>
{f'<h2>Predicted RFS</h2><img alt="RFS curve" src="data:image/png;base64,{img}">' if img else ''}
<h2>Radiomics features ({len(result.radiomics.features)})</h2><table>{features}</table>
<h2>Provenance</h2><table>{prov_rows}</table>
</body></html>
"""
    write_text(path, page)
    return path


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _curve_png(result: CaseResult) -> str:
    """The patient's curve with the training groups' KM curves, as base64 PNG ('' without a prediction)."""
    p = result.prediction
    if p is None:
        return ""
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # noqa: PLC0415 - after choosing Agg: Slicer's Qt must not become the backend

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for group, color in (("low", "tab:green"), ("high", "tab:gray")):
        g = p.group_curves.get(group)
        if g:
            ax.step(g["time"], g["survival"], where="post", color=color, ls="--", label=f"training {group}-risk")
    ax.plot(p.curve["time"], p.curve["survival"], color="tab:red", lw=2, label=f"patient {p.patient_id}")
    ax.set(xlabel="Months after surgery", ylabel="Recurrence-free survival", ylim=(0, 1.02))
    ax.legend(loc="lower left")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")

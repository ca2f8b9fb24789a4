"""Figures to data URIs and the Jinja2 environment that turns report contexts into one HTML file."""

from __future__ import annotations

import base64
import io
import math
import re
from pathlib import Path
from typing import Any

import jinja2
import matplotlib

from gistrisk.atomic import atomic_path

# matplotlib.pyplot is imported inside pyplot() only: the Agg backend must be chosen before it is imported,
# and it adds about 0.6 s to every model command (fit, validate, predict import the report modules; measured).

#: figure resolution in the HTML; high enough to read axis labels, small enough to keep the file light
DPI = 110

MODEL_LABELS = {
    "clinical": "Clinical", "radiomics": "Radiomics", "pathology": "Pathomics",
    "early_fusion": "Early fusion", "fusion": "Late fusion", "fusion_including_partial": "Late fusion (incl. partial)",
    "modified_nih": "Modified NIH",
}
#: display order of models in tables and plots
MODEL_ORDER = ("clinical", "radiomics", "pathology", "early_fusion", "fusion", "fusion_including_partial",
               "modified_nih")
COLORS = {"clinical": "#1b9e77", "radiomics": "#d95f02", "pathology": "#7570b3", "early_fusion": "#e7298a",
          "fusion": "#222222", "fusion_including_partial": "#666666", "modified_nih": "#a6761d",
          "low": "#2c7bb6", "high": "#d7191c", "very low": "#1a9641", "intermediate": "#fdae61"}


def label(model: str) -> str:
    return MODEL_LABELS.get(model, model.replace("_", " ").capitalize())


def ordered(names) -> list[str]:
    names = list(names)
    return [m for m in MODEL_ORDER if m in names] + sorted(m for m in names if m not in MODEL_ORDER)


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt  # noqa: PLC0415 - after choosing Agg, so that no display is needed

    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                         "figure.dpi": DPI, "savefig.bbox": "tight", "svg.hashsalt": "gistrisk"})
    return plt


class Figures:
    """Collects figures as base64 PNG data URIs; optionally also saves each as ``<dir>/<name>.png``."""

    def __init__(self, save_dir: str | Path | None = None):
        self.save_dir = Path(save_dir) if save_dir else None
        self.uris: dict[str, str] = {}

    def add(self, name: str, fig) -> str:
        plt = pyplot()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
        plt.close(fig)
        data = buf.getvalue()
        if self.save_dir:
            with atomic_path(self.save_dir / f"{name}.png") as tmp:
                tmp.write_bytes(data)
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        self.uris[name] = uri
        return uri


def fmt(x: Any, digits: int = 3) -> str:
    """Number to text; NaN/None as an em dash."""
    if x is None:
        return "—"
    try:
        xf = float(x)
    except (TypeError, ValueError):
        return str(x)
    return "—" if math.isnan(xf) else f"{xf:.{digits}f}"


def fmt_p(p: Any) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_is(p: Any) -> str:
    """"p = 0.012" or "p < 0.001" (for running text and titles)."""
    t = fmt_p(p)
    return "p " + t if t.startswith("<") else f"p = {t}"


def environment():
    """Jinja2 environment over the packaged templates, HTML auto-escaping on."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("gistrisk.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(fmt=fmt, fmt_p=fmt_p, p_is=p_is, label=label)
    return env


def render(template: str, context: dict[str, Any]) -> str:
    return environment().get_template(template).render(**context)


_EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?(?!data:|#)([^"'\s>]+)""", re.IGNORECASE)


def external_references(html: str) -> list[str]:
    """Every src/href that is not a data: URI or an in-page anchor (a self-contained file has none)."""
    return _EXTERNAL.findall(html)

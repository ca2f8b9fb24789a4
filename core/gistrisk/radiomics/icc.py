"""ICC(1,1) of radiomics features over repeated extractions of each case (original + perturbed copies).

The one-way random effects, single-measurement intraclass correlation (Shrout & Fleiss 1979): a feature
whose value moves little within a case, compared with how much it differs between cases, is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from gistrisk.radiomics.perturb import PERTURBATIONS

if TYPE_CHECKING:
    import pandas as pd

# pandas is imported inside icc_table only: gistrisk.radiomics.runs imports this module, and the cohort
# extraction's main process otherwise never loads pandas (it would add about 0.5 s to each run, measured).

_REL_TOL = 1e-10  # a feature whose spread is below this fraction of its magnitude is constant (float noise)


def icc_1_1(values: np.ndarray) -> float:
    """One-way random effects, single-measurement ICC(1,1) (Shrout & Fleiss 1979, ICC(1,1)).

    Parameters
    ----------
    values : (n_cases, k) array, one row per case, one column per measurement (original + perturbed).
        Rows with a non-finite value are left out.

    Returns
    -------
    ``(MSB - MSW) / (MSB + (k - 1) MSW)``; NaN when fewer than 2 complete cases, k < 2, or the values
    are constant over all cases (0 / 0).
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 2:
        raise ValueError(f"values must be 2-D (cases x measurements), got shape {x.shape}")
    x = x[np.isfinite(x).all(axis=1)]
    n, k = x.shape
    if n < 2 or k < 2:
        return float("nan")
    grand = x.mean()
    ss_total = float(((x - grand) ** 2).sum())
    scale = float(np.abs(x).max())
    if ss_total == 0.0 or math.sqrt(ss_total / x.size) <= _REL_TOL * scale:
        return float("nan")
    row_means = x.mean(axis=1)
    msb = k * float(((row_means - grand) ** 2).sum()) / (n - 1)
    msw = float(((x - row_means[:, None]) ** 2).sum()) / (n * (k - 1))
    return (msb - msw) / (msb + (k - 1) * msw)


def icc_table(results: Sequence[dict]) -> pd.DataFrame:
    """Per-feature ICCs from the robustness worker's results (``{"patient_id", "extractions": [...]}`` per case).

    Only features present in every extraction of every case are scored.
    """
    import pandas as pd  # noqa: PLC0415 - see the module top

    names: list[str] = list(results[0]["extractions"][0]["features"])
    common = set(names)
    for rec in results:
        for e in rec["extractions"]:
            common &= set(e["features"])
    names = [n for n in names if n in common]
    columns = ["feature", "image_type", "feature_class", "icc", *(f"icc_{k}" for k in PERTURBATIONS),
               "n_cases", "n_extractions"]
    if not names:
        return pd.DataFrame(columns=columns)

    def matrix(kinds: tuple[str, ...]) -> np.ndarray:
        # (cases, extractions, features); every case has the same extractions in the same order
        return np.array([[[float(e["features"][n]) for n in names] for e in rec["extractions"]
                          if e["perturbation"] in kinds] for rec in results], dtype=float)

    full = matrix(("original", *PERTURBATIONS))
    per_kind = {k: matrix(("original", k)) for k in PERTURBATIONS}
    out = []
    for j, name in enumerate(names):
        parts = name.split("_", 2)
        col = full[:, :, j]
        out.append({
            "feature": name,
            "image_type": parts[0] if len(parts) == 3 else "",
            "feature_class": parts[1] if len(parts) == 3 else "",
            "icc": icc_1_1(col),
            **{f"icc_{k}": icc_1_1(m[:, :, j]) for k, m in per_kind.items()},
            "n_cases": int(np.isfinite(col).all(axis=1).sum()),
            "n_extractions": int(col.shape[1]),
        })
    return pd.DataFrame(out, columns=columns)

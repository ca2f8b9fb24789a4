"""A small synthetic development cohort whose bundle the Slicer module can apply to a real case.

Why a third generator (beside ``gistrisk.survival.synthetic`` and ``gistrisk.simulate``): the module
extracts real PyRadiomics features from the real lung2 CT, so its bundle must be fitted on columns
with exactly those names and values around that case's, plus clinical columns the Slicer form knows
(tumour size, mitoses, site, rupture). The other two generators have neither. A latent
aggressiveness drives two radiomics features, tumour size, mitoses, two slide features and the
hazard, so every modality has some signal. Test helper (also used by docs/screenshots/render.py
and benchmarks/slicer_latency.py); not shipped with the extension; not for clinical use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from gistrisk.survival.config import fast_overrides, merge_settings

RADIOMICS_COLUMNS = ("original_shape_Maximum3DDiameter", "original_glszm_ZoneEntropy", "original_firstorder_Mean",
                     "original_glcm_Contrast", "original_shape_Sphericity",
                     "original_glszm_SmallAreaHighGrayLevelEmphasis")
N_SLIDE_FEATURES = 6
#: the shared quick fit settings (configs/fit_fast.yaml), with LASSO by cross-validated C-index: the
#: demo cohort's radiomics signal is weak (two features, 80 patients), the deviance criterion drops
#: the modality as carrying no signal, and the module's tests need a three-modality bundle
DEMO_FIT = merge_settings(fast_overrides(), {"modality": {"lasso": {"criterion": "cindex"}}})


def write_demo_cohort(folder: str | Path, features: dict[str, float], n: int = 80, seed: int = 0) -> dict[str, Path]:
    """Write radiomics, clinical, pathology and outcomes CSVs for ``gistrisk fit``.

    Parameters
    ----------
    features : one case's radiomics (name -> value); must hold :data:`RADIOMICS_COLUMNS`.
    n : patients; seed : random seed (every draw derives from it).

    Returns
    -------
    dict modality/outcomes -> CSV path.
    """
    rng = np.random.default_rng(seed)
    ids = [f"D{i:03d}" for i in range(n)]
    agg = rng.normal(size=n)
    rad = pd.DataFrame({"patient_id": ids, **{
        k: features[k] * np.exp(0.3 * rng.normal(size=n) + (0.3 * agg if j < 2 else 0.0))
        for j, k in enumerate(RADIOMICS_COLUMNS)}})
    size = np.clip(np.exp(np.log(5.5) + 0.3 * agg + 0.4 * rng.normal(size=n)), 1.0, 25.0).round(1)
    clin = pd.DataFrame({
        "patient_id": ids, "tumour_size_cm": size, "mitoses_per_5mm2": rng.poisson(np.exp(1 + 0.8 * agg)),
        "site": rng.choice(["stomach", "small intestine", "colorectum"], n, p=[0.6, 0.3, 0.1]),
        "rupture": (rng.random(n) < 0.05).astype(int), "age": rng.integers(30, 85, n)})
    path = pd.DataFrame({"patient_id": ids, **{f"path_{j:04d}": rng.normal(size=n) + (0.6 * agg if j < 2 else 0.0)
                                               for j in range(N_SLIDE_FEATURES)}})
    t, c = rng.exponential(60 * np.exp(-0.8 * agg)), rng.uniform(12, 120, n)
    out = pd.DataFrame({"patient_id": ids, "time": np.minimum(t, c).round(2) + 0.01, "event": (t <= c).astype(int)})
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: folder / f"{name}.csv" for name in ("radiomics", "clinical", "pathology", "outcomes")}
    for name, df in zip(files, (rad, clin, path, out)):
        df.to_csv(files[name], index=False)
    return files


def fit_command(gistrisk: str, files: dict[str, Path], bundle: str | Path, config: str | Path | None = None) -> list[str]:
    """The ``gistrisk fit`` command line for the demo cohort."""
    cmd = [gistrisk, "fit", "--outcomes", str(files["outcomes"])]
    for m in ("radiomics", "clinical", "pathology"):
        cmd += ["-m", f"{m}={files[m]}"]
    if config:
        cmd += ["--config", str(config)]
    return cmd + ["--out", str(bundle)]


def write_fit_config(path: str | Path) -> Path:
    """Write :data:`DEMO_FIT` as a ``--config`` YAML file; returns its path."""
    path = Path(path)
    path.write_text(yaml.safe_dump(DEMO_FIT, sort_keys=False), encoding="utf-8")
    return path

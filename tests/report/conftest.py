"""A small fitted and validated model shared by the report tests (fit ~15 s once per session)."""

from __future__ import annotations

import html as htmllib
import re

import numpy as np
import pandas as pd
import pytest

from gistrisk.survival.config import FAST_CONFIG, load_config
from gistrisk.survival.synthetic import make_tables
from gistrisk.survival.train import fit_multimodal
from gistrisk.survival.validate import validate

P = {"clinical": 6, "radiomics": 30, "pathology": 30}


def clinical_like(tables: dict[str, pd.DataFrame], seed: int) -> pd.DataFrame:
    """make_tables' clinical block turned into a hospital-like table: two signal columns become
    tumour size and mitoses (so modified NIH is informative), plus site, sex and age with gaps."""
    rng = np.random.default_rng(seed)
    c = tables["clinical"].copy()
    n = len(c)
    c["tumour_size_cm"] = np.round(np.clip(np.exp(np.log(5.5) + 0.5 * c["cli_0000"]), 1, 25), 1)
    c["mitoses_per_5mm2"] = np.round(np.exp(1.2 + 0.9 * c["cli_0001"])).astype(int)
    c["site"] = rng.choice(["stomach", "small intestine", "colorectum"], n, p=[0.6, 0.3, 0.1])
    c["sex"] = rng.choice(["male", "female"], n)
    c["age"] = np.round(rng.normal(59, 11, n))
    c.loc[c.index[rng.random(n) < 0.05], "age"] = np.nan
    return c.drop(columns=["cli_0000", "cli_0001"])


def cohort(n: int, seed: int, missing=None):
    tables, outcomes, _ = make_tables(n, p=P, seed=seed, missing=missing)
    tables["clinical"] = clinical_like(tables, seed)
    return tables, outcomes


@pytest.fixture(scope="session")
def fitted():
    """(model, dev tables, dev outcomes, ext tables, ext outcomes, metrics, predictions)."""
    dev, ydev = cohort(150, 1)
    ext, yext = cohort(70, 2, missing={"radiomics": 0.1})
    model = fit_multimodal(dev, ydev, load_config(FAST_CONFIG))
    metrics, pred = validate(model, {k: v.reset_index() for k, v in ext.items()}, yext, bootstrap=50, seed=0)
    return {"model": model, "dev": dev, "ydev": ydev, "ext": ext, "yext": yext, "metrics": metrics, "pred": pred}


def _write_report(fitted, path, *, model=None, metrics=None, figures_dir=None):
    """The cohort report of the shared fit (optionally another model or metrics), unescaped HTML."""
    from gistrisk.report import write_cohort_report

    out = write_cohort_report(
        path, model=model or fitted["model"], metrics=metrics or fitted["metrics"], predictions=fitted["pred"],
        outcomes=fitted["yext"], clinical=fitted["ext"]["clinical"], dev_outcomes=fitted["ydev"],
        dev_clinical=fitted["dev"]["clinical"], title="Test report", bootstrap=50, validation_seed=0,
        extra_hashes={"radiomics params": "ab" * 32}, figures_dir=figures_dir)
    return out, htmllib.unescape(out.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def report(fitted, tmp_path_factory):
    """(path, unescaped HTML, figures folder) of the cohort report of the shared fit."""
    d = tmp_path_factory.mktemp("cohort_report")
    out, html = _write_report(fitted, d / "report.html", figures_dir=d / "figures")
    return out, html, d / "figures"


def _section(html: str, key: str) -> str:
    """The HTML of one report section: from its ``<h2 id=key>`` to the next ``<h2``."""
    m = re.search(rf'<h2 id="{key}">', html)
    assert m, f"no section {key!r}"
    end = html.find("<h2", m.end())
    return html[m.start():end if end >= 0 else len(html)]


@pytest.fixture(scope="session")
def write_report():
    """``write_report(fitted, path, model=..., metrics=...)`` -> (path, unescaped HTML)."""
    return _write_report


@pytest.fixture(scope="session")
def section():
    """``section(html, key)`` -> the HTML of that report section."""
    return _section

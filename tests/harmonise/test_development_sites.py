"""Several hospitals inside the development cohort: mapped onto the largest inside every fold."""

import numpy as np
import pandas as pd
import pytest

from gistrisk.errors import InputError
from gistrisk.harmonise import development
from gistrisk.harmonise.site import harmonise_tables, read_site_file
from gistrisk.survival.config import fast_overrides, load_config
from gistrisk.survival.model import MultimodalRiskModel
from gistrisk.survival.synthetic import make_tables
from gistrisk.survival.train import assign_folds, fit_multimodal


def _two_hospitals(n_b=60, seed=21):
    tables, y, _ = make_tables(160, p={"clinical": 4, "radiomics": 30}, seed=seed, effect=0.7)
    ids = tables["radiomics"].index
    b = ids[-n_b:]
    rng = np.random.default_rng(seed)
    shift, stretch = rng.uniform(-1.5, 1.5, 30), rng.uniform(1.5, 2.5, 30)
    tables["radiomics"].loc[b] = tables["radiomics"].loc[b] * stretch + shift
    tables["clinical"]["hospital"] = np.where(ids.isin(b), "B", "A")
    return tables, y, b


def _config(**harmonisation):
    return load_config(overrides={**fast_overrides(), "n_jobs": 1,
                                  "harmonisation": {"site_column": "hospital", **harmonisation}})


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    tables, y, b = _two_hospitals()
    seen: list[pd.Index] = []
    original = development.SiteHarmoniser.fit

    def recording(self, X):
        seen.append(X.index.copy())
        return original(self, X)

    development.SiteHarmoniser.fit = recording
    try:
        model = fit_multimodal(tables, y, _config())
    finally:
        development.SiteHarmoniser.fit = original
    folder = tmp_path_factory.mktemp("sites")
    model.save(folder / "model")
    return model, tables, y, b, seen, folder


def test_sites_are_harmonised_on_training_rows_only(fitted):
    model, tables, y, _, seen, _ = fitted
    folds = assign_folds(y, load_config(overrides=fast_overrides()).fusion.oof_folds, 0)
    all_rows = set(tables["radiomics"].index)
    training_sets = [all_rows - set(folds.index[folds == k]) for k in range(folds.max() + 1)]
    fits = [set(ix) for ix in seen]
    assert all(rows == all_rows or rows in training_sets for rows in fits)  # final model or a fold's training rows
    assert all(any(rows == t for rows in fits) for t in training_sets)  # every fold harmonised on its own rows


def test_the_bundle_records_the_sites_and_the_clinical_model_does_not_use_the_hospital(fitted):
    model, tables, _, b, _, folder = fitted
    sites = model.info_["harmonisation"]["development_sites"]["radiomics"]
    assert sites["reference_site"] == "A" and sites["patients"] == {"A": 100, "B": 60}
    assert "hospital" not in model.input_columns_.get("clinical", [])
    loaded = MultimodalRiskModel.load(folder / "model")
    X = tables["radiomics"].assign(**{development.SITE: tables["clinical"]["hospital"]})
    np.testing.assert_allclose(loaded.pipelines_["radiomics"].score(X), model.pipelines_["radiomics"].score(X))
    mapped = model.pipelines_["radiomics"].prepare(X)
    a = tables["radiomics"].drop(index=b)
    assert np.median(np.abs(mapped.loc[b].mean() - a.mean()) / a.std()) < 0.2
    assert np.median(np.abs(tables["radiomics"].loc[b].mean() - a.mean()) / a.std()) > 0.4


def test_a_development_site_file_scores_that_site_as_the_fit_did(fitted, gistrisk_cli):
    """The command in this process (its own process: tests/harmonise/test_harmonise_cli.py)."""
    model, tables, _, b, _, folder = fitted
    site = folder / "B.json"
    run = gistrisk_cli("harmonise", "--model", folder / "model", "--development-site", "B", "--out", site)
    assert run.returncode == 0, run.stderr
    new = {"radiomics": tables["radiomics"].loc[b[:3]].reset_index()}
    scored = model.scores(harmonise_tables(model.info_, new, read_site_file(site, model.info_)))
    X = tables["radiomics"].loc[b[:3]].assign(**{development.SITE: "B"})
    np.testing.assert_allclose(scored["score_radiomics"].to_numpy(), model.pipelines_["radiomics"].score(X),
                               rtol=1e-10)
    refused = gistrisk_cli("harmonise", "--model", folder / "model", "--development-site", "A",
                           "--out", folder / "A.json")
    assert refused.returncode == 2 and "reference site" in refused.stderr


def test_a_development_site_with_too_few_patients_is_refused():
    tables, y, _ = _two_hospitals(n_b=12)
    with pytest.raises(InputError, match="at least 20 cases"):
        fit_multimodal(tables, y, _config())

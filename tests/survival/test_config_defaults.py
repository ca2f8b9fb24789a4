"""One place for the fit defaults: the config dataclasses. `gistrisk fit` without --config, `load_config()`
and `FitConfig()` fit the same model; configs/fit_default.yaml is their commented copy."""

import dataclasses
import json

import pytest
import yaml

from gistrisk.atomic import json_default
from gistrisk.survival.config import (
    DEFAULT_CONFIG,
    FAST_CONFIG,
    MODALITY_DEFAULTS,
    FitConfig,
    LassoConfig,
    ModalityConfig,
    fast_overrides,
    load_config,
)
from gistrisk.survival.model import nan_to_null
from gistrisk.survival.synthetic import make_tables
from gistrisk.survival.train import fit_multimodal
from gistrisk.tables import load_features, load_outcomes


def _keys(d: dict, where: str = "") -> set[str]:
    out = set()
    for k, v in d.items():
        out |= _keys(v, f"{where}{k}.") if isinstance(v, dict) else {f"{where}{k}"}
    return out


def test_python_and_command_line_defaults_are_one():
    cfg = FitConfig()
    assert cfg.to_dict() == load_config().to_dict()
    assert cfg.for_modality("radiomics").cox.penalizer == 0.1
    assert cfg.for_modality("clinical").preprocess.log_skewed == 1.0
    assert cfg.for_modality("pathology").preprocess.pca_components == 32
    assert cfg.for_modality("pathology").cluster.enabled is True


def test_fit_default_yaml_documents_every_default_and_nothing_else():
    doc = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    assert doc.pop("modalities") == MODALITY_DEFAULTS
    base = FitConfig().to_dict()
    base.pop("modalities")
    assert _keys(doc) == _keys(base)
    assert load_config(DEFAULT_CONFIG).to_dict() == FitConfig().to_dict()


def test_per_modality_defaults_sit_on_top_of_the_shared_settings():
    """A change to `modality` reaches clinical and pathology too, in Python as from YAML."""
    py = FitConfig(modality=ModalityConfig(lasso=LassoConfig(cv_folds=3)))
    cli = load_config(overrides={"modality": {"lasso": {"cv_folds": 3}}})
    assert py.to_dict() == cli.to_dict()
    assert py.modalities["clinical"].lasso.cv_folds == 3 and py.modalities["clinical"].preprocess.log_skewed == 1.0
    assert FitConfig(modalities={}).for_modality("pathology").preprocess.pca_components is None
    assert load_config(overrides={"modalities": {"pathology": None}}).for_modality("pathology").cluster.enabled is False


def test_the_fast_settings_are_one_file():
    assert load_config(FAST_CONFIG).to_dict() == load_config(overrides=fast_overrides()).to_dict()
    from gistrisk.simulate import recovery

    assert recovery.FAST == fast_overrides()
    assert dataclasses.asdict(load_config(overrides=recovery.FORCE_SELECTION).modality.lasso) == {
        **dataclasses.asdict(load_config(FAST_CONFIG).modality.lasso), "criterion": "cindex"}


@pytest.mark.slow
def test_fit_multimodal_with_fitconfig_fits_what_gistrisk_fit_fits(tmp_path, gistrisk_cli):
    """The Python API with ``FitConfig()`` and the command line without --config: the same bundle."""
    tables, out, _ = make_tables(70, p={"clinical": 4, "pathology": 34}, n_signal=2, effect=0.8, seed=3)
    paths = {}
    for m, df in tables.items():
        paths[m] = tmp_path / f"{m}.csv"
        df.reset_index().to_csv(paths[m], index=False)
    out.reset_index().to_csv(tmp_path / "outcomes.csv", index=False)
    mods = [a for m, p in paths.items() for a in ("--modality", f"{m}={p}")]
    # the command line in this process (its own process is tested in test_cli.py): the same defaults
    r = gistrisk_cli("fit", "--outcomes", tmp_path / "outcomes.csv", *mods, "--out", tmp_path / "model")
    assert r.returncode == 0, r.stderr[-3000:]
    cli = json.loads((tmp_path / "model" / "model.json").read_text())
    model = fit_multimodal({m: load_features(p, m) for m, p in paths.items()}, load_outcomes(tmp_path / "outcomes.csv"),
                           FitConfig())
    py = json.loads(json.dumps(nan_to_null(model.to_dict()), default=json_default))
    for d in (cli, py):  # what only the command line records: when, from which files, extraction records
        for k in ("created", "inputs", "extraction", "clinical_dictionary"):
            d["info"].pop(k, None)
    assert py["info"]["parameters"] == cli["info"]["parameters"] == json.loads(json.dumps(FitConfig().to_dict()))
    assert json.dumps(py, sort_keys=True) == json.dumps(cli, sort_keys=True)

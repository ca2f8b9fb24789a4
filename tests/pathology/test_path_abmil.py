"""Attention pooling of tumour-tile embeddings (gated ABMIL, Ilse et al. 2018) trained with a Cox loss inside
each training fold, as the pathology modality's `aggregation: abmil`: leakage, signal recovery against the
paper's mean, bundle round trip, determinism and config checks, on small synthetic bags written with the
embeddings writer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import gistrisk.pathology
import gistrisk.pathology.abmil as abmil
from gistrisk.cli import app
from gistrisk.errors import BundleError, InputError
from gistrisk.pathology.abmil import bag_files, read_bag, tumour_rule
from gistrisk.pathology.classes import CLASSES
from gistrisk.pathology.embeddings import write_embeddings
from gistrisk.pathology.features import FeatureConfig, features_table, pool_tumour_features
from gistrisk.report.methods import deviations
from gistrisk.survival.config import ABMILConfig, load_config
from gistrisk.survival.evaluation import harrell_c
from gistrisk.survival.model import MultimodalRiskModel
from gistrisk.survival.pipeline import ModalityPipeline
from gistrisk.survival.train import assign_folds, fit_multimodal
from gistrisk.tables import load_features

DIM = 8
#: small, quick attention settings for the tests (the defaults are in survival/config.py)
SMALL = {"hidden": 16, "epochs": 100, "lr": 0.006, "dropout": 0.5, "weight_decay": 0.1, "inner_folds": 3,
         "max_tiles": 64}


def synthetic_bags(root: Path, n: int, *, seed: int, n_tiles: int = 24, n_signal: tuple[int, int] = (3, 6),
                   effect: float = 1.5, noise_sd: float = 1.0, offset_sd: float = 1.0, permute: bool = False,
                   prefix: str = "P") -> tuple[Path, pd.DataFrame]:
    """``n`` patients, one slide each, written as ``root/slides.parquet`` (the paper's mean of tumour tiles)
    and ``root/slides.embeddings/<slide_id>.h5``.

    Each slide has ``n_tiles`` tumour tiles and 8 stroma tiles, embeddings (DIM,). A few tumour tiles (3-6)
    are marked (dimension 0 = 4) and carry the patient's latent risk in dimension 1; every other tile has a
    patient offset unrelated to outcome (SD ``offset_sd``) plus noise (SD ``noise_sd``) there, so the mean
    drowns the signal and attention can find it. Stroma tiles
    carry the opposite of the risk in dimension 1: pooling them in would hide it. Outcomes: exponential
    times with log-hazard ``effect * risk``, uniform censoring. Returns (table path, outcomes)."""
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=n)
    t_event = rng.exponential(1.0 / (0.02 * np.exp(effect * risk)))
    t_cens = rng.uniform(20, 120, size=n)
    time, event = np.minimum(t_event, t_cens), (t_event <= t_cens).astype(int)
    if permute:
        order = rng.permutation(n)
        time, event = time[order], event[order]
    folder = root / "slides.embeddings"
    folder.mkdir(parents=True)
    results, ids = [], [f"{prefix}{i:03d}" for i in range(n)]
    for i, pid in enumerate(ids):
        k = int(rng.integers(n_signal[0], n_signal[1] + 1))
        tum = rng.normal(size=(n_tiles, DIM)).astype(np.float32)
        tum[:, 1] = offset_sd * rng.normal() + noise_sd * tum[:, 1]
        tum[:k, 0] = 4.0
        tum[:k, 1] = risk[i] + 0.2 * rng.normal(size=k)
        stroma = rng.normal(size=(8, DIM)).astype(np.float32)
        stroma[:, 0] = 4.0
        stroma[:, 1] = -risk[i]
        feats = np.vstack([tum, stroma])
        probs = np.full((len(feats), len(CLASSES)), 0.02, np.float32)
        probs[:n_tiles, 0], probs[n_tiles:, 1] = 0.9, 0.9
        order = rng.permutation(len(feats))  # the marked tiles anywhere in the slide
        feats, probs = feats[order], probs[order]
        tiles = pd.DataFrame({"x": np.arange(len(feats)) * 448, "y": 0, "size0": 448, "level": 0, "tile_size": 224})
        write_embeddings(folder / f"{pid}-HE1.h5", tiles, feats, probs, classes=list(CLASSES), slide_id=f"{pid}-HE1",
                         patient_id=pid, slide=f"{pid}.svs", target_mpp=0.5, level0_mpp=0.25,
                         provenance={"parameters": {}})
        vec, mask = pool_tumour_features(probs, feats, list(CLASSES), FeatureConfig())
        results.append({"patient_id": pid, "slide_id": f"{pid}-HE1", "n_tiles": len(feats),
                        "n_tumour_tiles": int(mask.sum()), "features": vec, "flag": None})
    table = root / "slides.parquet"
    features_table(results, DIM).to_parquet(table, index=False)
    outcomes = pd.DataFrame({"time": time, "event": event}, index=pd.Index(ids, name="patient_id"))
    return table, outcomes


#: the selection steps kept small (the tests are about the attention pooling)
FAST_SELECTION = {"lasso": {"cv_folds": 3, "n_alphas": 20}, "rsf": {"n_estimators": 30, "cv_folds": 3, "n_repeats": 1}}


def config(aggregation: str = "abmil", seed: int = 0, **abmil):
    over = {"seed": seed, "bootstrap": 20, "fusion": {"oof_folds": 3, "early_fusion": False}, "modality": FAST_SELECTION,
            "modalities": {"pathology": {"aggregation": aggregation, "abmil": {**SMALL, **abmil}}}}
    return load_config(overrides=over)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return synthetic_bags(tmp_path_factory.mktemp("bags"), 200, seed=1)


@pytest.fixture(scope="module")
def fitted(cohort):
    table, y = cohort
    return fit_multimodal({"pathology": load_features(table, "pathology")}, y, config())


@pytest.mark.slow
def test_permuted_outcomes_give_chance_out_of_fold(tmp_path):
    """Leakage detector: the attention model and its Cox see only the training rows of each fold. The LASSO gate
    is off so the attention risk always reaches the Cox: a leak could not hide behind `no signal`. And a risk that
    ranks the training rows' inner folds the wrong way never enters with a negative weight (non-negative
    stacking): with no signal, held-out risks of models fitted to noise tend to anti-correlate with outcome."""
    table, y = synthetic_bags(tmp_path, 200, seed=2, permute=True)
    cfg = config().for_modality("pathology")
    cfg.lasso.enabled = False
    X = load_features(table, "pathology")
    t, e = y.loc[X.index, "time"].to_numpy(), y.loc[X.index, "event"].to_numpy()
    folds = assign_folds(y.loc[X.index], 3, seed=0).to_numpy()
    oof = np.zeros(len(X))
    for k in range(3):
        p = ModalityPipeline("pathology", cfg, seed=k).fit(X[folds != k], t[folds != k], e[folds != k])
        assert p.steps_["abmil"]["inner_folds"] == 3
        assert p.no_signal_ or p.cox_.coef[0] > 0, p.cox_.coef
        oof[folds == k] = p.score(X[folds == k])
    c = harrell_c(t, e, oof)
    assert 0.38 < c < 0.62, c


@pytest.mark.slow
def test_attention_finds_the_signal_the_mean_dilutes(cohort, fitted):
    table, y = cohort
    mean = fit_multimodal({"pathology": load_features(table, "pathology")}, y, config("mean"))
    c_abmil, c_mean = fitted.cv_metrics_["pathology"]["c_index"], mean.cv_metrics_["pathology"]["c_index"]
    assert c_abmil > 0.62, c_abmil  # oracle 0.75 on these patients; the permuted bound is 0.62
    assert c_abmil > c_mean + 0.08, (c_abmil, c_mean)  # measured 0.66 vs 0.52
    p = fitted.pipelines_["pathology"]
    assert p.selected_ == ["abmil_risk"] and not p.no_signal_
    assert p.steps_["abmil"]["inner_oof_c_index"] > 0.65
    assert p.steps_["abmil"]["tiles"]["max"] == 24  # tumour tiles only: the 8 stroma tiles are not in the bag
    X = load_features(table, "pathology")
    assert p.fitted_frame(X).equals(p.inner_) and not p.prepare(X).equals(p.inner_)  # in-sample risks are overfit
    card = fitted.info_["model_card"]["input_ranges"]["pathology"]["abmil_risk"]
    assert card["max"] == p.inner_["abmil_risk"].max()  # the development range of risks scored out of fold
    said = {d["key"]: d["ours"] for d in deviations(fitted.info_)}
    assert "pathology" in said["abmil"] and "abmil" not in {d["key"] for d in deviations(mean.info_)}


@pytest.mark.slow
def test_bundle_round_trip_and_refused_weights(cohort, fitted, tmp_path, monkeypatch):
    table, _y = cohort
    ext_table, _ = synthetic_bags(tmp_path / "ext", 30, seed=5, prefix="E")
    tables = {"pathology": load_features(ext_table, "pathology").reset_index()}
    before = fitted.predict(tables)
    out = fitted.save(tmp_path / "model")
    record = json.loads((out / "model.json").read_text())["pipelines"]["pathology"]["abmil"]
    weights = out / record["file"]
    assert weights.is_file() and weights.suffix == ".safetensors" and len(record["sha256"]) == 64
    loaded = MultimodalRiskModel.load(out)
    pd.testing.assert_frame_equal(loaded.predict(tables), before)
    assert loaded.input_columns_["pathology"] == []  # the model reads the embeddings, not the table's columns

    with monkeypatch.context() as m:  # a Slicer or core install without the pathology extra (torch)
        m.setitem(sys.modules, "gistrisk.pathology.abmil", None)
        m.delattr(gistrisk.pathology, "abmil")
        with pytest.raises(BundleError, match="pathology extra"):
            MultimodalRiskModel.load(out)

    good = weights.read_bytes()
    weights.write_bytes(good[:-4] + bytes(4))
    with pytest.raises(BundleError, match="sha256"):
        MultimodalRiskModel.load(out)
    weights.unlink()
    with pytest.raises(BundleError, match=record["file"]):
        MultimodalRiskModel.load(out)


def test_same_seed_same_scores_other_seed_other_model(cohort):
    """Determinism of the pathology pipeline with attention pooling (inner folds and final model): the same rows
    and seed give the same weights and scores bit for bit, another seed another model. Plumbing, not signal:
    40 patients, few epochs."""
    table, y = cohort
    X = load_features(table, "pathology").iloc[:40]
    t, e = y.loc[X.index, "time"], y.loc[X.index, "event"]

    def fit(seed: int) -> ModalityPipeline:
        cfg = config(seed=seed, epochs=15).for_modality("pathology")
        cfg.lasso.enabled = False  # the attention model is kept whatever its signal
        return ModalityPipeline("pathology", cfg, seed=seed).fit(X, t, e)

    a, again = fit(0), fit(0)
    assert a.to_dict()["abmil"]["sha256"] == again.to_dict()["abmil"]["sha256"]
    np.testing.assert_array_equal(a.score(X), again.score(X))
    np.testing.assert_array_equal(a.inner_.to_numpy(), again.inner_.to_numpy())
    assert fit(1).to_dict()["abmil"]["sha256"] != a.to_dict()["abmil"]["sha256"]


def test_training_is_deterministic_without_torchs_process_wide_switch(monkeypatch):
    """Training leaves torch's determinism switch alone (it is process-wide: flipping it changes what every other
    thread's torch code may do meanwhile) and is still deterministic: the same bags and seed give the same
    weights bit for bit with several threads, tied times included."""
    def refuse(*args, **kwargs):
        raise AssertionError("torch.use_deterministic_algorithms called")

    monkeypatch.setattr(torch, "use_deterministic_algorithms", refuse)
    monkeypatch.setattr(abmil, "ONE_THREAD_BELOW", 0)  # the threads torch has, however small the bags
    rng = np.random.default_rng(0)
    bags = [rng.normal(size=(int(rng.integers(5, 40)), DIM)).astype(np.float32) for _ in range(60)]
    time, event = np.round(rng.exponential(30, 60)), (rng.random(60) < 0.6).astype(int)
    cfg = ABMILConfig(hidden=16, epochs=30, lr=0.006, dropout=0.5, weight_decay=0.1)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        fit = [abmil.AttentionCox.fit(bags, time, event, cfg, seed=3, rule=FeatureConfig()).to_bytes()
               for _ in range(2)]
    finally:
        torch.set_num_threads(threads)
    assert fit[0] == fit[1]


def test_aggregation_is_checked_by_name():
    with pytest.raises(InputError, match=r"modalities\.pathology\.aggregation must be mean or abmil.*'max'"):
        load_config(overrides={"modalities": {"pathology": {"aggregation": "max"}}})
    with pytest.raises(InputError, match=r"unknown key\(s\) \['heads'\].*modalities\.pathology\.abmil"):
        load_config(overrides={"modalities": {"pathology": {"abmil": {"heads": 2}}}})
    with pytest.raises(InputError, match=r"modalities\.pathology\.abmil\.epochs must be at least 1"):
        load_config(overrides={"modalities": {"pathology": {"abmil": {"epochs": 0}}}})
    with pytest.raises(InputError, match=r"modality\.aggregation: abmil .*modalities"):
        load_config(overrides={"modality": {"aggregation": "abmil"}})
    with pytest.raises(InputError, match="harmonisation"):
        load_config(overrides={"modalities": {"pathology": {"aggregation": "abmil"}},
                               "harmonisation": {"modalities": ["radiomics", "pathology"]}})
    assert load_config().for_modality("pathology").aggregation == "mean"  # the paper's, by default


def test_a_table_without_embeddings_is_one_clear_error(tmp_path):
    table, y = synthetic_bags(tmp_path, 12, seed=3)
    X = load_features(table, "pathology")
    cfg = config().for_modality("pathology")
    missing = tmp_path / "slides.embeddings" / "P004-HE1.h5"
    missing.unlink()
    with pytest.raises(InputError, match="P004"):
        ModalityPipeline("pathology", cfg).fit(X, y["time"], y["event"])
    other = tmp_path / "other.parquet"
    pd.read_parquet(table).to_parquet(other)
    with pytest.raises(InputError, match=r"other\.parquet.*embeddings"):
        ModalityPipeline("pathology", cfg).fit(load_features(other, "pathology"), y["time"], y["event"])
    # a `gistrisk pathology aggregate` table: its provenance lists the files, wherever they lie
    files = sorted((tmp_path / "slides.embeddings").glob("*.h5"))
    (tmp_path / "other.provenance.json").write_text(json.dumps(
        {"parameters": {"feature": {"tumour_threshold": 0.95, "tumour_class": "tumour"}},
         "embeddings": [{"slide_id": f.stem, "file": str(f)} for f in files]}))
    X = load_features(other, "pathology").drop(index="P004")
    assert [f[0].name for f in bag_files(X)] == [f"{pid}-HE1.h5" for pid in X.index]
    with pytest.raises(InputError, match="P000.*no tumour tile"):  # the table's own rule: 0.95, none reach it
        read_bag(bag_files(X)[0], tumour_rule(X), patient="P000")


@pytest.mark.slow
def test_fit_and_predict_from_the_command_line(tmp_path, gistrisk_cli):
    table, y = synthetic_bags(tmp_path / "dev", 60, seed=4)
    y.reset_index().to_csv(tmp_path / "outcomes.csv", index=False)
    (tmp_path / "fit.yaml").write_text(json.dumps(
        {"bootstrap": 20, "fusion": {"oof_folds": 3, "early_fusion": False}, "modality": FAST_SELECTION,
         "modalities": {"pathology": {"aggregation": "abmil", "abmil": {**SMALL, "epochs": 15}}}}))  # plumbing
    r = CliRunner().invoke(app, ["fit", "--outcomes", str(tmp_path / "outcomes.csv"), "-m", f"pathology={table}",
                                 "--config", str(tmp_path / "fit.yaml"), "--out", str(tmp_path / "model")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["predict", "--model", str(tmp_path / "model"), "-m", f"pathology={table}",
                                 "--out", str(tmp_path / "pred.csv")])
    assert r.exit_code == 0, r.output
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == 60 and pred["score_pathology"].notna().all()
    (tmp_path / "dev" / "slides.embeddings" / "P007-HE1.h5").unlink()
    # in this process: the exit code and stderr of a run of its own (a traceback would raise here)
    r = gistrisk_cli("predict", "--model", tmp_path / "model", "-m", f"pathology={table}", "--out", tmp_path / "pred2.csv")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert [ln for ln in r.stderr.splitlines() if ln.startswith("error:")] == [
        ln for ln in r.stderr.splitlines() if "P007" in ln]

import numpy as np
import pandas as pd
import pytest

from gistrisk.errors import InputError
from gistrisk.survival.preprocess import Preprocessor


def _df():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    return pd.DataFrame({
        "a": x, "a_copy": x * 2 + 1 + rng.normal(scale=1e-3, size=40), "const": 1.0,
        "b": rng.normal(size=40), "site": ["stomach"] * 25 + ["small intestine"] * 10 + ["rectum"] * 5,
    }, index=[f"P{i}" for i in range(40)])


def test_fit_on_training_rows_only():
    df = _df()
    tr, te = df.iloc[:30], df.iloc[30:]
    p = Preprocessor().fit(tr)
    out = p.transform(te)
    # training statistics, not the test rows', are used
    assert np.allclose(p.transform(tr).mean().to_numpy(), 0, atol=1e-12)
    assert not np.allclose(out["b"].mean(), 0, atol=1e-3)


def test_drops_constant_and_near_duplicates_and_encodes_categories():
    p = Preprocessor(corr_threshold=0.95).fit(_df())
    assert p.dropped_["constant"] == ["const"]
    assert p.dropped_["correlated"] == ["a_copy"]
    # most frequent level is the reference
    assert [c for c in p.features_out_ if c.startswith("site=")] == ["site=small intestine", "site=rectum"]


def test_missing_values_imputed_with_training_median_and_mode():
    df = _df()
    df.loc["P0", "b"] = np.nan
    df.loc["P1", "site"] = np.nan
    p = Preprocessor(corr_threshold=None).fit(df)
    out = p.transform(df)
    assert np.isfinite(out.to_numpy()).all()
    assert p.medians_["b"] == pytest.approx(df["b"].median())
    assert out.loc["P1", "site=rectum"] == out.loc["P2", "site=rectum"]  # mode = stomach: both zero


def test_unseen_level_maps_to_reference():
    p = Preprocessor().fit(_df())
    new = _df().iloc[:1].copy()
    new["site"] = "oesophagus"
    out = p.transform(new)
    assert (out.filter(like="site=") == (0 - p.mean_[[p.features_out_.index(c) for c in out.filter(like='site=').columns]])
            / p.scale_[[p.features_out_.index(c) for c in out.filter(like='site=').columns]]).all(axis=None)


def test_junk_in_numeric_column_names_patient_and_column():
    df = _df()
    df["b"] = df["b"].astype(object)
    df.loc["P7", "b"] = "n/a?"
    df.attrs["source"] = "clinical.csv"
    with pytest.raises(InputError) as e:
        Preprocessor().fit(df)
    msg = str(e.value)
    assert "clinical.csv" in msg and "P7" in msg and "'b'" in msg and "n/a?" in msg


def test_numbers_held_as_text_are_a_numeric_column():
    """A column of numbers stored as text (a parquet string column, a table built in Python) is encoded as
    the numbers, not refused for junk it does not have."""
    df = _df()
    text = df.assign(b=df["b"].map(repr).astype(object))
    np.testing.assert_allclose(Preprocessor().fit(text).transform(text), Preprocessor().fit(df).transform(df),
                               rtol=1e-12)  # the same numbers, converted column by column


def test_numbers_with_a_unit_are_refused_not_taken_as_categories():
    """'-0.325 HU' in every row is not 40 categories of one patient each: refused, value named."""
    df = _df()
    df["b"] = [f"{v:.3f} HU" for v in df["b"]]
    df.attrs["source"] = "radiomics.csv"
    with pytest.raises(InputError) as e:
        Preprocessor().fit(df)
    msg = str(e.value)
    assert "radiomics.csv" in msg and "P0" in msg and "'b'" in msg and df.loc["P0", "b"] in msg and "unit" in msg
    assert Preprocessor().fit(_df().assign(site=[f"grade {i % 3}" for i in range(40)]))  # text first: a category


def test_all_constant_features_refused():
    df = pd.DataFrame({"x": [1.0] * 5, "y": [2.0] * 5}, index=list("abcde"))
    df.attrs["source"] = "radiomics.csv"
    with pytest.raises(InputError, match="every feature is constant"):
        Preprocessor().fit(df)


def test_round_trip_and_restrict():
    df = _df()
    p = Preprocessor().fit(df)
    q = Preprocessor.from_dict(p.to_dict())
    pd.testing.assert_frame_equal(p.transform(df), q.transform(df))
    r = p.restrict(["b", "site=rectum"])
    pd.testing.assert_frame_equal(r.transform(df), p.transform(df)[["b", "site=rectum"]])
    assert r.numeric_ == ["b"] and r.categorical_ == ["site"]


def test_log_transform_of_skewed_columns_decided_on_training_rows():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"mitoses": rng.lognormal(1.0, 1.0, 200).round(),  # right-skewed count
                       "age": rng.normal(60, 10, 200),                     # symmetric
                       "shift": rng.normal(0, 1, 200) ** 3}, index=[f"P{i}" for i in range(200)])
    p = Preprocessor(corr_threshold=None, log_skewed=1.0).fit(df)
    assert p.log_columns_ == ["mitoses"]  # "shift" is skewed but has negative values
    out = p.transform(df)
    expected = np.log1p(df["mitoses"])
    assert np.allclose(out["mitoses"], (expected - expected.mean()) / expected.std(ddof=0))
    q = Preprocessor.from_dict(p.to_dict())
    pd.testing.assert_frame_equal(q.transform(df), out)
    assert Preprocessor(corr_threshold=None).fit(df).log_columns_ == []


def test_default_config_logs_skewed_clinical_columns_only():
    from gistrisk.survival.config import load_config

    cfg = load_config()
    assert cfg.for_modality("clinical").preprocess.log_skewed == 1.0
    assert cfg.for_modality("radiomics").preprocess.log_skewed is None
    assert cfg.for_modality("pathology").cluster.enabled


def _wide(n: int = 120, p: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Wide correlated features driven by 3 latent factors (like deep slide features); factor 0 returned."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n, 3)) * [3.0, 2.0, 1.0]
    X = f @ rng.normal(size=(3, p)) + 0.5 * rng.normal(size=(n, p))
    return pd.DataFrame(X, columns=[f"path_{j:04d}" for j in range(p)], index=[f"P{i}" for i in range(n)]), f[:, 0]


def test_pca_components_fitted_on_training_rows_and_recover_the_factors():
    df, factor = _wide()
    tr, te = df.iloc[:90], df.iloc[90:]
    p = Preprocessor(corr_threshold=None, pca_components=5).fit(tr)
    out = p.transform(tr)
    assert list(out.columns) == ["pc01", "pc02", "pc03", "pc04", "pc05"] == p.output_names_
    assert np.allclose(out.mean(), 0, atol=1e-10) and np.allclose(out.std(ddof=0), 1)
    assert np.allclose(np.corrcoef(out.to_numpy().T), np.eye(5), atol=1e-8)  # uncorrelated on training rows
    assert p.explained_variance_ratio_[:3].sum() > 0.9 > p.explained_variance_ratio_[:2].sum()
    # the leading component is the strongest latent factor, on held-out rows too
    assert abs(np.corrcoef(p.transform(te)["pc01"], factor[90:])[0, 1]) > 0.95
    # refitting on the same rows gives the same signs and values (no arbitrary SVD sign flips)
    pd.testing.assert_frame_equal(Preprocessor(corr_threshold=None, pca_components=5).fit(tr).transform(te),
                                  p.transform(te))


def test_pca_round_trip_restrict_and_limits():
    df, _ = _wide(n=40, p=60)
    p = Preprocessor(corr_threshold=None, pca_components=100).fit(df)
    assert len(p.component_names_) == 39  # at most n - 1 components
    q = Preprocessor.from_dict(p.to_dict())
    pd.testing.assert_frame_equal(p.transform(df), q.transform(df))
    r = Preprocessor.from_dict(p.restrict(["pc03", "pc01"]).to_dict())
    pd.testing.assert_frame_equal(r.transform(df), p.transform(df)[["pc03", "pc01"]])
    assert r.numeric_ == p.numeric_  # every input column is still needed
    with pytest.raises(InputError, match="pca_components must be at least 1"):
        Preprocessor(pca_components=0).fit(df)


def test_default_config_uses_principal_components_for_pathology_only():
    from gistrisk.survival.config import load_config

    cfg = load_config()
    assert cfg.for_modality("pathology").preprocess.pca_components == 32
    assert cfg.for_modality("radiomics").preprocess.pca_components is None
    assert cfg.for_modality("clinical").preprocess.pca_components is None


def test_keep_list_limits_the_columns_used():
    df = _df()
    p = Preprocessor(corr_threshold=None, keep=["b", "site", "not_in_table"]).fit(df)
    assert p.numeric_ == ["b"] and p.categorical_ == ["site"]
    assert list(p.transform(df).columns) == ["b", "site=small intestine", "site=rectum"]
    q = Preprocessor.from_dict(p.restrict(["b"]).to_dict())
    pd.testing.assert_frame_equal(q.transform(df), p.transform(df)[["b"]])
    with pytest.raises(InputError, match="none of the features in the keep list"):
        Preprocessor(keep=["zzz"]).fit(df)


def test_config_reads_feature_lists_relative_to_the_config(tmp_path):
    import json

    from gistrisk.survival.config import load_config

    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "robust.json").write_text(json.dumps({"threshold": 0.9, "kept": ["f1", "f2"]}))
    (tmp_path / "lists" / "clin.txt").write_text("# chosen by the clinicians\nage\n\ntumour_size_cm  # cm\n")
    cfg_file = tmp_path / "fit.yaml"
    cfg_file.write_text("modalities:\n  radiomics:\n    preprocess:\n      keep_features: lists/robust.json\n"
                        "  clinical:\n    preprocess:\n      keep_features: lists/clin.txt\n")
    cfg = load_config(cfg_file)
    assert cfg.for_modality("radiomics").preprocess.keep_features == ["f1", "f2"]
    assert cfg.for_modality("clinical").preprocess.keep_features == ["age", "tumour_size_cm"]
    assert cfg.for_modality("pathology").preprocess.keep_features is None
    (tmp_path / "lists" / "robust.json").write_text(json.dumps({"icc": {}}))
    with pytest.raises(InputError, match="kept") as e:
        load_config(cfg_file)
    assert "robust.json" in str(e.value)
    cfg_file.write_text("modality:\n  preprocess:\n    keep_features: missing.txt\n")
    with pytest.raises(InputError, match="cannot read the feature list"):
        load_config(cfg_file)


def test_pipeline_on_principal_components_labels_them_and_round_trips():
    from gistrisk.survival.config import ModalityConfig, PreprocessConfig
    from gistrisk.survival.pipeline import ModalityPipeline

    df, factor = _wide(n=150, p=80, seed=3)
    rng = np.random.default_rng(3)
    t = rng.exponential(np.exp(-0.8 * factor / factor.std()))
    e = (rng.random(150) < 0.7).astype(int)
    cfg = ModalityConfig(preprocess=PreprocessConfig(corr_threshold=None, pca_components=6))
    cfg.rsf.enabled = False
    pipe = ModalityPipeline("pathology", cfg, seed=0).fit(df, t, e)
    assert all(f.startswith("pc") for f in pipe.selected_) and "pc01" in pipe.selected_
    hr = pipe.hazard_ratios()
    assert hr["label"].str.match(r"PC \d+ of 80 features \(\d+\.\d % of variance\)").all()
    assert hr.loc[hr.feature == "pc01", "label"].item().startswith("PC 1 of 80")
    again = ModalityPipeline.from_dict(pipe.to_dict())
    np.testing.assert_allclose(again.score(df), pipe.score(df))
    assert abs(np.corrcoef(pipe.score(df), factor)[0, 1]) > 0.8  # the score follows the hazard factor


def _column_by_column(p: Preprocessor, X: pd.DataFrame) -> pd.DataFrame:
    """The encoding's definition, one column at a time (what the table-wide encoding must equal bit for bit)."""
    cols = {}
    for c in p.numeric_:
        v = pd.to_numeric(X[c], errors="coerce") if c in X else pd.Series(np.nan, index=X.index)
        v = v.astype(float)
        v = np.log1p(v.clip(lower=0)) if c in p.log_columns_ else v
        cols[c] = v.fillna(p.medians_[c])
    for c, levels in p.levels_.items():
        v = X[c].astype("string") if c in X else pd.Series(pd.NA, index=X.index, dtype="string")
        v = v.fillna(p.modes_[c])
        for lev in levels[1:]:
            cols[f"{c}={lev}"] = (v == lev).astype(float)
    return pd.DataFrame(cols, index=X.index)


def test_encoding_of_a_wide_mixed_table_equals_the_column_by_column_definition():
    rng = np.random.default_rng(0)
    n = 60
    X = pd.DataFrame(rng.lognormal(size=(n, 300)) * 10.0 ** rng.integers(-3, 4, 300),
                     columns=[f"f{i:03d}" for i in range(300)], index=[f"P{i}" for i in range(n)])
    X.iloc[rng.integers(0, n, 40), rng.integers(0, 300, 40)] = np.nan
    X["count"] = rng.integers(0, 9, n)
    X["flag"] = rng.uniform(size=n) < 0.3
    X["nullable"] = pd.array(rng.integers(0, 5, n), dtype="Int64")
    X.loc[X.index[:5], "nullable"] = pd.NA
    X["grade"] = rng.choice(["low", "high", None], n)
    p = Preprocessor(log_skewed=1.0).fit(X)
    assert p.log_columns_ and "flag" in p.numeric_ and "nullable" in p.numeric_
    medians = {c: float(np.log1p(pd.to_numeric(X[c]).astype(float).clip(lower=0)).median()
                        if c in p.log_columns_ else pd.to_numeric(X[c]).astype(float).median()) for c in p.numeric_}
    assert p.medians_ == medians
    pd.testing.assert_frame_equal(p._encode(X), _column_by_column(p, X), check_exact=True)
    new = X.drop(columns=["f007", "grade"]).astype({"f010": object})
    new.loc["P3", "f010"] = "n/a"  # text where a number belongs: coerced, then imputed (check_inputs refuses it)
    pd.testing.assert_frame_equal(p._encode(new), _column_by_column(p, new), check_exact=True)

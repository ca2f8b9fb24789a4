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

"""Each bad input gets a clear error naming the file, the patient and the column."""

import logging

import numpy as np
import pandas as pd
import pytest

from gistrisk.errors import InputError
from gistrisk.survival.config import load_config
from gistrisk.survival.pipeline import ModalityPipeline
from gistrisk.survival.synthetic import make_tables
from gistrisk.survival.train import fit_multimodal
from gistrisk.tables import load_features, load_outcomes, match_ids, parse_modality_args


def _write(tmp_path, name, df):
    p = tmp_path / name
    df.to_csv(p, index=False)
    return p


def _outcomes(**over):
    df = pd.DataFrame({"patient_id": ["A", "B", "C", "D"], "time": [10.0, 20.0, 5.0, 40.0], "event": [1, 0, 1, 0]})
    for k, v in over.items():
        df.loc[v[0], k] = v[1]
    return df


@pytest.mark.parametrize("change, pattern, patient", [
    ({"time": (1, -3.0)}, "negative time", "B"),
    ({"time": (2, np.nan)}, "missing or non-numeric time", "C"),
    ({"event": (3, 2)}, "event must be 0 or 1", "D"),
])
def test_outcome_values(tmp_path, change, pattern, patient):
    p = _write(tmp_path, "outcomes.csv", _outcomes(**change))
    with pytest.raises(InputError) as e:
        load_outcomes(p)
    assert pattern in str(e.value) and f"patient {patient}" in str(e.value) and "outcomes.csv" in str(e.value)


def test_duplicate_ids(tmp_path):
    df = _outcomes()
    df.loc[3, "patient_id"] = "A"
    with pytest.raises(InputError, match=r"outcomes.csv.*patient A.*duplicate patient_id: A"):
        load_outcomes(_write(tmp_path, "outcomes.csv", df))
    feats = pd.DataFrame({"patient_id": ["A", "A"], "x": [1.0, 2.0]})
    with pytest.raises(InputError, match="duplicate"):
        load_features(_write(tmp_path, "radiomics.csv", feats), "radiomics")


def test_no_events_at_all(tmp_path):
    df = _outcomes()
    df["event"] = 0
    with pytest.raises(InputError, match="no events at all"):
        load_outcomes(_write(tmp_path, "o.csv", df))


def test_missing_columns_and_files(tmp_path):
    with pytest.raises(InputError, match="table not found"):
        load_outcomes(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="missing column 'event'"):
        load_outcomes(_write(tmp_path, "o.csv", _outcomes().drop(columns="event")))
    with pytest.raises(InputError, match="no 'patient_id' column"):
        load_features(_write(tmp_path, "f.csv", pd.DataFrame({"id": [1], "x": [2]})), "clinical")
    with pytest.raises(InputError, match="NAME=TABLE"):
        parse_modality_args(["clinical.csv"])


def test_mismatched_ids_are_reported_both_ways(tmp_path, caplog):
    feats = load_features(_write(tmp_path, "clin.csv", pd.DataFrame({"patient_id": ["A", "B", "Z"], "x": [1, 2, 3.0]})),
                          "clinical")
    out = load_outcomes(_write(tmp_path, "o.csv", _outcomes()))
    with caplog.at_level(logging.WARNING):
        rep = match_ids(feats, out, "clinical")
    assert rep == {"features_without_outcome": ["Z"], "outcome_without_features": ["C", "D"]}
    assert "Z" in caplog.text and "C, D" in caplog.text


def test_junk_in_numeric_column_through_fit(tmp_path, fast):
    tables, out, _ = make_tables(60, p={"clinical": 4}, seed=0)
    df = tables["clinical"].reset_index()
    df["cli_0002"] = df["cli_0002"].astype(object)
    df.loc[7, "cli_0002"] = "12,5"
    path = _write(tmp_path, "clinical.csv", df)
    with pytest.raises(InputError) as e:
        fit_multimodal({"clinical": load_features(path, "clinical")}, out, load_config(overrides=fast))
    assert "clinical.csv" in str(e.value) and "P0007" in str(e.value) and "cli_0002" in str(e.value)


def test_fewer_events_than_features_shrinks_and_says_so(fast):
    tables, out, _ = make_tables(60, p={"r": 30}, seed=0)
    out = out.copy()
    ev = np.flatnonzero(out["event"].to_numpy())
    out.iloc[ev[8:], out.columns.get_loc("event")] = 0  # 8 events: at most 1 feature at 5 events/feature
    # the C-index LASSO criterion keeps features here (deviance finds no signal in 8 events): the shrink is tested
    cfg = load_config(overrides={**fast, "modality": {**fast["modality"], "lasso": {**fast["modality"]["lasso"],
                                                                                      "criterion": "cindex"}}}).modality
    p = ModalityPipeline("r", cfg).fit(tables["r"], out["time"], out["event"])
    assert len(p.selected_) == 1
    assert any("shrunk" in w for w in p.warnings_)


def test_one_event_refused():
    tables, out, _ = make_tables(30, p={"r": 5}, seed=0)
    out = out.copy()
    out["event"] = 0
    out.iloc[0, out.columns.get_loc("event")] = 1
    with pytest.raises(InputError, match="only 1 event"):
        ModalityPipeline("r").fit(tables["r"], out["time"], out["event"])


def test_all_constant_features(tmp_path, fast):
    _, out, _ = make_tables(30, p={"r": 2}, seed=0)
    df = pd.DataFrame({"patient_id": out.index, "a": 1.0, "b": 3.0})
    path = _write(tmp_path, "radiomics.csv", df)
    with pytest.raises(InputError, match="radiomics.csv.*every feature is constant"):
        fit_multimodal({"radiomics": load_features(path, "radiomics")}, out, load_config(overrides=fast))


def test_unknown_config_key(tmp_path):
    cfg = tmp_path / "fit.yaml"
    cfg.write_text("modality:\n  lasso:\n    alfa: 3\n")
    with pytest.raises(InputError, match=r"unknown key\(s\) \['alfa'\] in config section 'fit.modality.lasso'"):
        load_config(cfg)


def test_slide_table_meta_columns_and_flagged_slides(tmp_path):
    """Tile counts are not features; a slide flagged for no tumour tile means no pathology for that patient."""
    df = pd.DataFrame({"patient_id": ["A", "A", "B", "C"], "slide_id": ["A1", "A2", "B1", "C1"],
                       "n_tumour_tiles": [3, 5, 0, 2], "n_tiles": [10, 12, 9, 8],
                       "flag": ["", "", "no_tumour_tiles", ""],
                       "path_0000": [1.0, 3.0, np.nan, 4.0], "path_0001": [0.0, 2.0, np.nan, 1.0]})
    out = load_features(_write(tmp_path, "slides.csv", df), "pathology")
    assert list(out.columns) == ["path_0000", "path_0001"]
    assert list(out.index) == ["A", "C"]  # B dropped (no tumour tile), A's two slides averaged
    assert out.loc["A", "path_0000"] == 2.0

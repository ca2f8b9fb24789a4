"""write_tile_predictions: a tile grid on the real slide -> QuPath tiles with a tumour-probability measurement."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qupath_bridge.errors import QuPathInputError
from qupath_bridge.geojson import QuPathBridgeWarning, check_bounds, read_annotations, write_tile_predictions

CLASSES = ["tumour", "stroma", "necrosis", "background"]
TILE = 224


def _grid(width: int = 2220, height: int = 2967, seed: int = 0) -> pd.DataFrame:
    """Full 224-px tiles of the CMU slide (edge tiles that are not full squares dropped) with random softmax scores."""
    xs, ys = np.meshgrid(np.arange(0, width - TILE + 1, TILE), np.arange(0, height - TILE + 1, TILE))
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(xs.size, len(CLASSES)))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    df = pd.DataFrame({"x": xs.ravel(), "y": ys.ravel()})
    for j, c in enumerate(CLASSES):
        df[f"prob_{c}"] = p[:, j]
    df["predicted_class"] = [CLASSES[j] for j in p.argmax(axis=1)]
    return df


def test_grid_on_real_slide_round_trips(tmp_path: Path):
    tiles = _grid()
    assert len(tiles) == (2220 // 224) * (2967 // 224) == 9 * 13
    out = tmp_path / "CMU-1-Small-Region.tiles.geojson"
    write_tile_predictions(out, tiles, tile_size_px=TILE, classes=CLASSES, provenance={"seed": 0})
    back = read_annotations(out)
    assert len(back) == len(tiles)
    assert {a.object_type for a in back} == {"tile"}
    assert [a.class_name for a in back] == tiles["predicted_class"].tolist()
    np.testing.assert_array_equal([a.measurements["tumour probability"] for a in back], tiles["prob_tumour"])
    for c in CLASSES:
        np.testing.assert_array_equal([a.measurements[f"prob_{c}"] for a in back], tiles[f"prob_{c}"])
    assert all(a.geometry.area == TILE * TILE for a in back)
    assert [a.geometry.bounds[:2] for a in back] == list(zip(tiles["x"].astype(float), tiles["y"].astype(float)))
    assert check_bounds(back, 2220, 2967) == []
    assert {a.color for a in back if a.class_name == "tumour"} == {(200, 0, 0)}  # the tissue palette
    assert json.loads(out.read_text())["gistrisk"] == {"seed": 0}


def test_deterministic_ids_and_bytes(tmp_path: Path):
    tiles = _grid()
    a, b = tmp_path / "a.geojson", tmp_path / "b.geojson"
    write_tile_predictions(a, tiles, tile_size_px=TILE, classes=CLASSES)
    write_tile_predictions(b, tiles, tile_size_px=TILE, classes=CLASSES)
    assert a.read_bytes() == b.read_bytes()
    ids = [x.id for x in read_annotations(a)]
    assert len(set(ids)) == len(ids)


def test_argmax_when_no_class_column_and_integer_classes_and_detections(tmp_path: Path):
    tiles = _grid().drop(columns="predicted_class")
    out = tmp_path / "t.geojson"
    write_tile_predictions(out, tiles, tile_size_px=TILE, classes=CLASSES, object_type="detection")
    back = read_annotations(out)
    expected = [CLASSES[j] for j in tiles[[f"prob_{c}" for c in CLASSES]].to_numpy().argmax(axis=1)]
    assert [a.class_name for a in back] == expected and {a.object_type for a in back} == {"detection"}
    tiles["pred"] = np.zeros(len(tiles), dtype=int) + 2
    write_tile_predictions(out, tiles, tile_size_px=TILE, classes=CLASSES, class_column="pred")
    assert {a.class_name for a in read_annotations(out)} == {"necrosis"}


def test_width_height_columns_and_custom_prefix_and_tumour_class(tmp_path: Path):
    df = pd.DataFrame({"x": [0, 448], "y": [0, 0], "width": [448, 448], "height": [448, 448],
                       "p_Tumor": [0.9, 0.2], "p_Other": [0.1, 0.8]})
    out = tmp_path / "t.geojson"
    write_tile_predictions(out, df, tile_size_px=224, classes=["Tumor", "Other"], prob_prefix="p_")
    back = read_annotations(out)
    assert [a.geometry.area for a in back] == [448 * 448] * 2
    assert [a.measurements["tumour probability"] for a in back] == [0.9, 0.2]
    assert [a.class_name for a in back] == ["Tumor", "Other"]
    with pytest.raises(QuPathInputError, match="no tumour class"):
        write_tile_predictions(out, df.rename(columns={"p_Tumor": "p_A"}), tile_size_px=224, classes=["A", "Other"],
                               prob_prefix="p_")
    write_tile_predictions(out, df.rename(columns={"p_Tumor": "p_A"}), tile_size_px=224, classes=["A", "Other"],
                           prob_prefix="p_", tumour_class="A")
    assert [a.measurements["tumour probability"] for a in read_annotations(out)] == [0.9, 0.2]


@pytest.mark.parametrize("mutate, match, column", [
    (lambda d: d.drop(columns="x"), "no 'x' column", "x"),
    (lambda d: d.drop(columns="prob_stroma"), "lacks probability columns", "prob_stroma"),
    (lambda d: d.assign(y=d["y"].where(d.index != 3)), r"missing or infinite values in rows \[3\]", "y"),
    (lambda d: d.assign(prob_tumour=d["prob_tumour"] + 1.5), "outside", "prob_tumour"),
    (lambda d: d.assign(predicted_class="mucosa"), r"predicted classes \['mucosa'\]", "predicted_class"),
    (lambda d: d.assign(x=d["x"].astype(str) + "px"), "not numeric", "x"),
])
def test_bad_tables_name_file_and_column(tmp_path: Path, mutate, match, column):
    out = tmp_path / "bad.geojson"
    with pytest.raises(QuPathInputError, match=match) as e:
        write_tile_predictions(out, mutate(_grid()), tile_size_px=TILE, classes=CLASSES)
    assert e.value.file == str(out) and e.value.column == column
    assert not out.exists()  # nothing half-written


def test_empty_table_warns_and_writes_empty_collection(tmp_path: Path):
    out = tmp_path / "none.geojson"
    with pytest.warns(QuPathBridgeWarning, match="no tiles"):
        write_tile_predictions(out, _grid().iloc[:0], tile_size_px=TILE, classes=CLASSES)
    assert json.loads(out.read_text())["features"] == []

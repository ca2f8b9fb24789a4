"""Tile grid at 0.5 um/px on the real Aperio slide, and labels from QuPath 0.4+ GeoJSON drawn on it.

Geometry: the slide is 2220 x 2967 px at 0.499 um/px. A 224-px tile at 0.5 um/px covers
224 * 0.5 / 0.499 = 224.45 px at level 0, read as 224 px (0.2 % scale difference, no resampling).
Full tiles: floor(2220 / 224) = 9 columns x floor(2967 / 224) = 13 rows = 117 tiles; the
partial column (2220 - 2016 = 204 px) and row (2967 - 2912 = 55 px) are dropped.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from shapely.geometry import Polygon, box

from gistrisk.errors import InputError
from gistrisk.pathology.pipeline import tile_one
from gistrisk.pathology.tiling import TileConfig, read_tiles_table

T = 224  # tile side at level 0 on this slide


def _ann(geom, cls):
    from qupath_bridge.geojson import Annotation

    return Annotation(geometry=geom, class_name=cls, object_type="annotation")


@pytest.fixture(scope="module")
def drawn_geojson(tmp_path_factory):
    """Annotations as a pathologist would draw them in QuPath 0.4 (class names as typed there)."""
    from qupath_bridge.geojson import write_annotations

    anns = [
        # US spelling, a polygon covering tile columns 3-5 of rows 6-7 exactly -> 6 tumour tiles
        _ann(box(3 * T, 6 * T, 6 * T, 8 * T), "Tumor"),
        # stroma ring around tile (1, 10): columns 0-2, rows 9-11 minus the centre tile -> 8 tiles
        _ann(Polygon([(0, 9 * T), (3 * T, 9 * T), (3 * T, 12 * T), (0, 12 * T)],
                     [[(T, 10 * T), (2 * T, 10 * T), (2 * T, 11 * T), (T, 11 * T)]]), "Stroma"),
        # 60 % of tile (8, 0) -> necrosis; 40 % of tile (8, 1) -> unlabelled
        _ann(box(8 * T, 0, 8 * T + 0.6 * T, T), "Necrosis"),
        _ann(box(8 * T, T, 8 * T + 0.4 * T, 2 * T), "Necrosis"),
        # glass in the top-left corner -> 4 background tiles
        _ann(box(0, 0, 2 * T, 2 * T), "Background"),
    ]
    path = tmp_path_factory.mktemp("geo") / "cmu.geojson"
    write_annotations(path, anns, qupath_version="0.4")
    return path


def test_grid_count_matches_geometry(cmu):
    df = tile_one(cmu, TileConfig(min_tissue_fraction=0.0))
    assert len(df) == 9 * 13 == 117
    assert sorted(df.x.unique()) == [i * T for i in range(9)]
    assert sorted(df.y.unique()) == [j * T for j in range(13)]
    assert (df.size0 == T).all() and (df.read_size == 224).all() and (df.level == 0).all()
    meta = df.attrs["gistrisk"]
    assert meta["n_grid"] == 117 and meta["mpp"] == pytest.approx(0.499)


def test_geojson_is_qupath_04_schema(drawn_geojson):
    doc = json.loads(drawn_geojson.read_text())
    assert doc["type"] == "FeatureCollection"
    props = doc["features"][0]["properties"]
    assert props["objectType"] == "annotation" and props["classification"]["name"] == "Tumor"


def test_drawn_annotations_label_the_right_tiles(cmu, drawn_geojson, tmp_path):
    df = tile_one(cmu, TileConfig(), annotations=drawn_geojson)
    got = {(int(r.x) // T, int(r.y) // T): r.label for r in df[df.label.notna()].itertuples()}
    expected = {(c, r): "tumour" for c in (3, 4, 5) for r in (6, 7)}
    expected |= {(c, r): "stroma" for c in (0, 1, 2) for r in (9, 10, 11) if (c, r) != (1, 10)}
    expected |= {(8, 0): "necrosis"}
    expected |= {(c, r): "background" for c in (0, 1) for r in (0, 1)}
    assert got == expected
    nec = df[(df.x == 8 * T) & (df.y == 0)]
    assert float(nec.label_overlap.iloc[0]) == pytest.approx(0.6, abs=1e-3)
    # labelled glass tiles are kept even though they fail the tissue filter
    assert (df[df.label == "background"].tissue_fraction < 0.5).all()
    # the table round-trips through Parquet with its metadata
    from gistrisk.atomic import write_table

    write_table(tmp_path / "t.parquet", df)
    back = read_tiles_table(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(back, df)
    assert back.attrs["gistrisk"]["annotations"] == str(drawn_geojson)


def test_lower_overlap_threshold_labels_partial_tile(cmu, drawn_geojson):
    df = tile_one(cmu, TileConfig(min_label_overlap=0.3), annotations=drawn_geojson)
    lab = df[(df.x == 8 * T) & (df.y == T)].label
    assert list(lab) == ["necrosis"]


# -- bad annotation files -----------------------------------------------------------------------

def _write(path, features):
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def _feature(coords, cls="Tumor", kind="Polygon"):
    return {"type": "Feature", "geometry": {"type": kind, "coordinates": coords},
            "properties": {"objectType": "annotation", "classification": {"name": cls, "color": [200, 0, 0]}}}


SQUARE = [[[672, 1344], [1344, 1344], [1344, 1792], [672, 1792], [672, 1344]]]


def test_unknown_class_names_file_and_class(cmu, tmp_path):
    p = _write(tmp_path / "a.geojson", [_feature(SQUARE, "Lymphocytes")])
    with pytest.raises(InputError, match="Lymphocytes") as e:
        tile_one(cmu, annotations=p)
    assert str(p) in str(e.value)


def test_self_intersecting_polygon_is_repaired_with_warning_or_refused(cmu, tmp_path):
    # a bow-tie over tiles (3..5, 6..7): the two triangles meet at the centre
    bow = [[[672, 1344], [1344, 1792], [1344, 1344], [672, 1792], [672, 1344]]]
    p = _write(tmp_path / "bow.geojson", [_feature(bow), _feature(SQUARE, "Stroma")])
    with pytest.warns(UserWarning):
        df = tile_one(cmu, annotations=p)
    assert df.label.notna().any()
    with pytest.raises(InputError) as e:
        tile_one(cmu, annotations=p, repair=False)
    assert str(p) in str(e.value)


def test_unclosed_polygon_is_closed_with_warning_or_refused(cmu, tmp_path):
    p = _write(tmp_path / "open.geojson", [_feature([SQUARE[0][:-1]])])
    with pytest.warns(UserWarning, match="not closed"):
        df = tile_one(cmu, annotations=p)
    assert set(df.label.dropna()) == {"tumour"} and df.label.notna().sum() == 6
    with pytest.raises(InputError, match="not closed"):
        tile_one(cmu, annotations=p, repair=False)


def test_annotation_outside_the_slide(cmu, tmp_path):
    far = [[[5000, 5000], [5600, 5000], [5600, 5600], [5000, 5600], [5000, 5000]]]
    p = _write(tmp_path / "far.geojson", [_feature(far)])
    with pytest.raises(InputError, match="outside") as e:
        tile_one(cmu, annotations=p)
    assert str(p) in str(e.value)
    edge = [[[2000, 0], [2400, 0], [2400, 300], [2000, 300], [2000, 0]]]  # past the right edge (2220)
    p2 = _write(tmp_path / "edge.geojson", [_feature(edge), _feature(SQUARE)])
    with pytest.raises(InputError, match="clip"):
        tile_one(cmu, annotations=p2)
    df = tile_one(cmu, annotations=p2, clip_annotations=True)
    assert df.label.notna().sum() == 6  # the clipped strip covers no full tile


def test_empty_feature_collection(cmu, tmp_path):
    p = _write(tmp_path / "empty.geojson", [])
    with pytest.raises(InputError, match="no features") as e:
        tile_one(cmu, annotations=p)
    assert str(p) in str(e.value)


def test_annotations_matching_no_tile(cmu, tmp_path):
    tiny = [[[700, 1400], [750, 1400], [750, 1450], [700, 1450], [700, 1400]]]
    p = _write(tmp_path / "tiny.geojson", [_feature(tiny)])
    with pytest.raises(InputError, match="none of the 1 annotations covers") as e:
        tile_one(cmu, annotations=p)
    assert str(p) in str(e.value)


def test_not_a_tiles_table(tmp_path):
    p = tmp_path / "x.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(p)
    with pytest.raises(InputError, match="not a tiles table"):
        read_tiles_table(p)


def test_both_backends_tile_identically(cmu, drawn_geojson):
    a = tile_one(cmu, annotations=drawn_geojson, backend="openslide")
    b = tile_one(cmu, annotations=drawn_geojson, backend="tiffslide")
    pd.testing.assert_frame_equal(a.drop(columns="slide"), b.drop(columns="slide"))

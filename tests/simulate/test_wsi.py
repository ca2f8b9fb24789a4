"""Simulated slides: pyramidal TIFFs both slide readers open with mpp; QuPath-schema annotations."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gistrisk.pathology.classes import CLASSES
from gistrisk.simulate.config import DEVELOPMENT, EXTERNAL, SimulationConfig
from gistrisk.simulate.slide_layout import layout, rasterise
from gistrisk.simulate.slide_texture import render


def _slides(cohort, name):
    d = cohort[f"{name}_dir"]
    return d, pd.read_csv(d / "slide_manifest.csv", keep_default_na=False)


def test_openslide_and_tiffslide_read_levels_and_mpp(cohort):
    import openslide
    import tiffslide

    cfg = SimulationConfig()
    d, man = _slides(cohort, "external")
    assert list(man.columns) == ["patient_id", "slide", "slide_id", "annotations", "mpp"]
    row = man.iloc[0]
    path = str(d / row["slide"])
    regions = []
    for slide in (openslide.OpenSlide(path), tiffslide.TiffSlide(path)):
        props = slide.properties
        mpp_x = props.get("openslide.mpp-x", props.get("tiffslide.mpp-x"))
        mpp_y = props.get("openslide.mpp-y", props.get("tiffslide.mpp-y"))
        assert float(mpp_x) == pytest.approx(0.5) and float(mpp_y) == pytest.approx(0.5)
        assert slide.level_count == cfg.wsi_levels
        assert slide.dimensions == (cfg.wsi_size, cfg.wsi_size)
        assert [round(x) for x in slide.level_downsamples] == [1, 4, 16]
        regions.append(np.asarray(slide.read_region((800, 1000), 0, (224, 224)).convert("RGB"), float))
        slide.close()
    assert np.abs(regions[0] - regions[1]).mean() < 1.0  # same pixels through both decoders
    assert regions[0].std() > 5  # texture, not a flat fill
    assert float(row["mpp"]) == 0.5


def test_annotations_parse_as_qupath_04(cohort):
    from qupath_bridge.geojson import read_annotations

    d, man = _slides(cohort, "development")
    annotated = man[man["annotations"] != ""]
    assert 0 < len(annotated) < len(man) or len(man) <= SimulationConfig().min_annotated
    size = SimulationConfig().wsi_size
    for rel in annotated["annotations"]:
        raw = json.loads((d / rel).read_text())
        assert raw["type"] == "FeatureCollection"
        for f in raw["features"]:
            assert f["properties"]["objectType"] == "annotation"
            assert set(f["properties"]["classification"]) == {"name", "color"}
            assert len(f["id"]) == 36
        anns = read_annotations(d / rel)
        assert {a.class_name for a in anns} <= set(CLASSES)
        assert "tumour" in {a.class_name for a in anns}
        for a in anns:
            assert a.object_type == "annotation" and a.geometry.is_valid and a.geometry.area > 0
            x0, y0, x1, y1 = a.geometry.bounds
            assert x0 >= 0 and y0 >= 0 and x1 <= size and y1 <= size


def test_annotated_regions_have_class_specific_colour(cohort):
    """Pixels under each annotation look like their class: glass is bright, tumour purple-dark."""
    import shapely
    import tiffslide

    from qupath_bridge.geojson import read_annotations

    d, man = _slides(cohort, "development")
    row = man[man["annotations"] != ""].iloc[0]
    with tiffslide.TiffSlide(str(d / row["slide"])) as slide:
        img = np.asarray(slide.read_region((0, 0), 1, slide.level_dimensions[1]).convert("RGB"), float)
        ds = slide.level_downsamples[1]
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    mean = {}
    for a in read_annotations(d / row["annotations"]):
        inside = shapely.contains_xy(a.geometry, (xx + 0.5) * ds, (yy + 0.5) * ds)
        mean[a.class_name] = img[inside].mean(axis=0)
    assert mean["background"].min() > 220
    # tumour: nuclei-rich, more haematoxylin (absorbs red); stroma: collagen, more eosin (absorbs green)
    assert mean["tumour"][0] < mean["stroma"][0] - 3
    assert mean["stroma"][1] < mean["tumour"][1] - 5
    # eosin-rich tissue is pinker (R - G) than the glass
    assert (mean["stroma"][0] - mean["stroma"][1]) > (mean["background"][0] - mean["background"][1]) + 20


def test_layout_regions_cover_the_slide_without_overlap():
    regions = layout(np.random.default_rng(0), 1024)
    assert set(regions) == set(CLASSES)
    total = sum(g.area for g in regions.values())
    assert total == pytest.approx(1024**2, rel=1e-6)
    lab = rasterise(regions, 1024)
    for i, name in enumerate(CLASSES):
        frac = (lab == i).mean()
        assert frac == pytest.approx(regions[name].area / 1024**2, abs=0.01), name


def _tumour_od(labels, latent, acq):
    rgb = render(labels, np.random.default_rng(3), latent, acq).astype(float)
    tum = labels == CLASSES.index("tumour")
    return -np.log(np.clip(rgb[tum], 1, 255) / 255).mean(axis=0)  # optical density (R, G, B)


def test_tumour_appearance_follows_the_latent_and_stain_shifts():
    labels = rasterise(layout(np.random.default_rng(1), 1024), 1024)
    low, high = _tumour_od(labels, -2.0, DEVELOPMENT), _tumour_od(labels, 2.0, DEVELOPMENT)
    # more and darker nuclei: haematoxylin absorbs red most, so red OD rises most
    assert high[0] > 1.4 * low[0]
    ext = _tumour_od(labels, 0.0, EXTERNAL)
    dev = _tumour_od(labels, 0.0, DEVELOPMENT)
    assert ext[0] > 1.1 * dev[0]  # stronger haematoxylin
    assert ext[1] < dev[1]  # weaker eosin (green channel)

"""`gistrisk demo`: its command lines are valid for the current CLI, its fit config for the loader.

The demo itself takes minutes (it trains a ResNet50 on CPU), so it is run by `make demo`, not here.
"""

from __future__ import annotations

import pytest
import typer

from gistrisk.simulate.demo import Layout, fit_config_text, plan
from gistrisk.simulate.demo_settings import PAPER, DemoSettings, settings_rows


def _parse(argv: list[str]):
    """Resolve sub-commands and parse the options the way the real CLI does (without running it)."""
    from gistrisk.cli import app

    cmd = typer.main.get_command(app)  # typer may vendor its own click: duck-type groups
    ctx = cmd.make_context("gistrisk", [], resilient_parsing=True)
    args = list(argv)
    while hasattr(cmd, "get_command"):
        name, args = args[0], args[1:]
        sub = cmd.get_command(ctx, name)
        assert sub is not None, f"no command {name!r}"
        ctx = sub.make_context(name, [], parent=ctx, resilient_parsing=True) if hasattr(sub, "get_command") else ctx
        cmd = sub
    return cmd.make_context(cmd.name, args, parent=ctx)


def test_every_planned_command_line_parses(tmp_path):
    lay = Layout(tmp_path)
    s = DemoSettings(weights=tmp_path / "w.pth")
    steps = plan(lay, s)
    assert [st.name for st in steps][-3:] == ["fit", "validate", "report"]
    for st in steps:
        argv = st.argv
        if st.name in ("fit", "validate"):
            argv = argv + ["-m", f"clinical={tmp_path / 'clinical.csv'}"]
        ctx = _parse(argv)
        assert ctx.params, st.name
        if st.name == "pathology_train":
            assert ctx.params["epochs"] == s.epochs and str(ctx.params["weights"]).endswith("w.pth")


def test_fit_config_is_accepted_by_the_survival_loader(tmp_path):
    from gistrisk.survival.config import load_config

    s = DemoSettings(rsf_trees=17, rsf_folds=3, bootstrap=55, seed=9)
    path = tmp_path / "fit.yaml"
    path.write_text(fit_config_text(s))
    cfg = load_config(path)
    assert cfg.seed == 9 and cfg.bootstrap == 55
    assert cfg.modality.rsf.n_estimators == 17 and cfg.modality.rsf.cv_folds == 3


def test_settings_table_pairs_every_shrunk_setting_with_the_paper():
    rows = settings_rows(DemoSettings(patients=60, epochs=3))
    assert [r[0] for r in rows] == list(PAPER)
    demo = dict((r[0], r[1]) for r in rows)
    assert demo["patients"].startswith("60 ") and demo["epochs"].startswith("3 epoch")
    assert "random initialisation" in demo["epochs"]


@pytest.mark.parametrize("metrics, expected", [
    ({"models": {"fusion": {"c_index": 0.81234, "c_index_ci": [0.7, 0.9]}}}, {"models.fusion": "0.812 (95% CI 0.700-0.900)"}),
    ({"clinical": {"c_index": 0.7}}, {"clinical": "0.700"}),
    (None, {}),
])
def test_c_index_lines_are_found_in_metrics(metrics, expected):
    from gistrisk.simulate.cli import _c_indices

    assert _c_indices(metrics) == expected


def test_a_batch_step_with_some_failed_slides_still_feeds_the_next_steps(cohort, tmp_path):
    """Slides whose annotations match no tile fail one by one (recorded); the tiles of the others
    must still reach classifier training, as `make demo` saw with seed 2."""
    import json

    import pandas as pd

    from gistrisk.simulate.demo import Step, _run

    dev = cohort["development_dir"]
    man = pd.read_csv(dev / "slide_manifest.csv")
    good = man[man["annotations"].notna()].iloc[0]
    tiny = {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {
        "type": "Polygon", "coordinates": [[[10, 10], [30, 10], [30, 30], [10, 30], [10, 10]]]},
        "properties": {"objectType": "annotation", "classification": {"name": "Tumor"}}}]}
    (tmp_path / "tiny.geojson").write_text(json.dumps(tiny))
    other = man[man["annotations"].isna()].iloc[0]
    rows = pd.DataFrame({"patient_id": [good.patient_id, other.patient_id],
                         "slide": [dev / good.slide, dev / other.slide],
                         "annotations": [dev / good.annotations, tmp_path / "tiny.geojson"]})
    rows.to_csv(tmp_path / "slides.csv", index=False)
    lay = Layout(tmp_path / "demo")
    tiles = lay.work / "tiles"
    step = Step("pathology_tiles", ["pathology", "tiles", "--manifest", str(tmp_path / "slides.csv"), "--out",
                                    str(tiles), "--jobs", "1"], tiles, optional=True, batch=True)
    _run(step, lay, echo=lambda _m: None)
    assert step.status == "ok" and "some inputs failed" in step.message
    assert len(list(tiles.glob("*.tiles.parquet"))) == 1
    failures = pd.read_csv(tiles / "tiles.failures.csv")
    assert failures["patient_id"].tolist() == [other.patient_id]
    # the same command with only the failing slide produces nothing: the step fails
    rows.iloc[[1]].to_csv(tmp_path / "bad.csv", index=False)
    bad = Step("pathology_tiles", ["pathology", "tiles", "--manifest", str(tmp_path / "bad.csv"), "--out",
                                   str(tmp_path / "t2"), "--jobs", "1"], tmp_path / "t2", optional=True, batch=True)
    _run(bad, lay, echo=lambda _m: None)
    assert bad.status == "failed"

"""`gistrisk demo`: its command lines are valid for the current CLI and its API calls for the APIs, its fit
config for the loader; a step's log, status and exit-status rule.

The demo itself takes minutes (it trains a ResNet50 on CPU), so it is run by `make demo`, not here.
"""

from __future__ import annotations

import inspect

import pytest
import typer

from gistrisk.errors import InputError
from gistrisk.simulate.demo import Layout, fit_config_text, plan, run_demo
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


def test_every_planned_step_parses_or_binds(tmp_path):
    lay = Layout(tmp_path)
    s = DemoSettings(weights=tmp_path / "w.pth")
    steps = plan(lay, s)
    assert [st.name for st in steps][-3:] == ["fit", "validate", "report"]
    for st in steps:
        if st.call is not None:  # a Python API call: its arguments bind to the function's signature
            assert not st.argv, st.name
            inspect.signature(st.call).bind(**st.kwargs)
            continue
        argv = st.argv
        if st.name in ("fit", "validate"):
            argv = argv + ["-m", f"clinical={tmp_path / 'clinical.csv'}"]
        ctx = _parse(argv)
        assert ctx.params, st.name
        if st.name == "pathology_train":
            assert ctx.params["epochs"] == s.epochs and str(ctx.params["weights"]).endswith("w.pth")


def test_cohort_steps_call_the_arms_apis(tmp_path):
    from gistrisk.pathology.runs import feature_cohort, tile_cohort
    from gistrisk.radiomics.runs import extract_cohort

    steps = {st.name: st for st in plan(Layout(tmp_path), DemoSettings(jobs=3, tile_size=112))}
    assert steps["radiomics_development"].call is extract_cohort
    assert steps["radiomics_external"].kwargs["jobs"] == 3
    assert steps["pathology_tiles"].call is tile_cohort
    assert steps["pathology_tiles"].kwargs["config"].tile_size == 112
    assert steps["pathology_features_external"].call is feature_cohort
    assert all(steps[n].batch for n in ("radiomics_development", "pathology_tiles", "pathology_features_external"))
    assert steps["pathology_tiles"].describe().startswith("gistrisk.pathology.runs.tile_cohort(slides=")
    assert steps["fit"].describe().startswith("gistrisk fit --outcomes ")


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
    must still reach classifier training, as `make demo` saw with seed 2. The step calls the pathology
    API in a child process, with its output in the step's log."""
    import json

    import pandas as pd

    from gistrisk.pathology.runs import tile_cohort
    from gistrisk.simulate.demo import Step, _run, print_message

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
    step = Step("pathology_tiles", produces=tiles, optional=True, batch=True, call=tile_cohort,
                kwargs={"slides": tmp_path / "slides.csv", "out_dir": tiles, "jobs": 1, "on_message": print_message})
    _run(step, lay, echo=lambda _m: None)
    assert step.status == "ok" and "some inputs failed" in step.message
    assert len(list(tiles.glob("*.tiles.parquet"))) == 1
    failures = pd.read_csv(tiles / "tiles.failures.csv")
    assert failures["patient_id"].tolist() == [other.patient_id]
    log = (lay.logs / "pathology_tiles.log").read_text()
    assert f"{tiles}: 1 slides tiled (0 from cache), 1 failed" in log  # the run's summary, in the step's log
    # the same call with only the failing slide produces nothing: the step fails
    rows.iloc[[1]].to_csv(tmp_path / "bad.csv", index=False)
    bad = Step("pathology_tiles", produces=tmp_path / "t2", optional=True, batch=True, call=tile_cohort,
               kwargs={"slides": tmp_path / "bad.csv", "out_dir": tmp_path / "t2", "jobs": 1})
    _run(bad, lay, echo=lambda _m: None)
    assert bad.status == "failed" and bad.message.startswith("exit 1; log ")


def test_an_api_step_with_bad_input_fails_with_the_error_in_its_log(tmp_path):
    from gistrisk.radiomics.runs import extract_cohort
    from gistrisk.simulate.demo import Step, _run

    manifest = tmp_path / "m.csv"
    manifest.write_text("patient_id,image\nP1,a.nrrd\n")
    lay = Layout(tmp_path / "demo")
    seen: list[str] = []
    step = Step("radiomics_development", produces=tmp_path / "f.parquet", modality="radiomics", batch=True,
                call=extract_cohort, kwargs={"manifest": manifest, "out": tmp_path / "f.parquet"})
    _run(step, lay, echo=seen.append)
    assert step.status == "failed" and step.message.startswith("exit 2; log ")
    assert "error: file " in step.message and "lacks column(s) mask" in step.message
    assert seen[0] == f"[radiomics_development] gistrisk.radiomics.runs.extract_cohort(manifest='{manifest}', " \
                      f"out='{tmp_path / 'f.parquet'}')"
    assert not (tmp_path / "f.parquet").exists()


@pytest.mark.parametrize("under", [False, True], ids=["a file", "under a file"])
def test_an_out_that_is_a_file_or_lies_under_one_is_refused_before_any_step(tmp_path, under):
    taken = tmp_path / "taken.txt"
    taken.write_text("mine")
    steps = []
    with pytest.raises(InputError, match="is an existing file"):
        run_demo(taken / "demo" if under else taken, echo=steps.append)
    assert steps == [] and taken.read_text() == "mine"

"""`gistrisk report` after `gistrisk validate`, as a user runs them."""

import html as htmllib
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from gistrisk.cli import app
from gistrisk.errors import InputError
from gistrisk.report.render import external_references


@pytest.fixture(scope="module")
def validated(fitted, tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    fitted["model"].save(d / "model")
    for m, df in fitted["ext"].items():
        df.reset_index().to_csv(d / f"{m}.csv", index=False)
    fitted["yext"].reset_index().to_csv(d / "outcomes.csv", index=False)
    mods = [a for m in fitted["ext"] for a in ("--modality", f"{m}={d / m}.csv")]
    r = CliRunner().invoke(app, ["validate", "--model", str(d / "model"), "--outcomes", str(d / "outcomes.csv"),
                                 *mods, "--out", str(d / "val"), "--bootstrap", "50"])
    assert r.exit_code == 0, r.output
    return d


@pytest.mark.slow
def test_report_from_a_validation_folder(validated):
    d = validated
    r = CliRunner().invoke(app, ["report", "--validation", str(d / "val"), "--clinical", str(d / "clinical.csv"),
                                 "--out", str(d / "report.html"), "--figures", str(d / "figs")])
    assert r.exit_code == 0, r.output
    assert "report written to" in r.output
    html = htmllib.unescape((d / "report.html").read_text(encoding="utf-8"))
    assert external_references(html) == []
    metrics = json.loads((d / "val" / "metrics.json").read_text())["metrics"]
    for name in ("fusion", "clinical", "modified_nih"):
        assert f"{metrics[name]['c_index']:.3f}" in html
    assert "development cohort (out-of-fold scores)" in html  # from model.json: nothing else beside it
    assert "50 bootstrap resamples" in html
    assert (d / "figs" / "nomogram.png").is_file()


def test_missing_validation_folder_is_a_clear_error(tmp_path):
    r = CliRunner().invoke(app, ["report", "--validation", str(tmp_path / "nothing"), "--out", str(tmp_path / "r.html")])
    assert isinstance(r.exception, InputError)
    assert "metrics.json" in str(r.exception) and "gistrisk validate" in str(r.exception)


def test_exit_code_2_and_help(gistrisk_cli):
    r = subprocess.run([sys.executable, "-m", "gistrisk", "report", "--validation", "/nonexistent/val",
                        "--out", "/tmp/never.html"], capture_output=True, text=True)
    assert r.returncode == 2 and "metrics.json" in r.stderr
    h = gistrisk_cli("report", "--help")  # in this process: the command's own process is the run above
    assert h.returncode == 0 and "Example" in h.stdout and "--validation" in h.stdout

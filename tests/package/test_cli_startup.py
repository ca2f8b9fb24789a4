"""The command line loads only the sub-command it runs: a radiologist's one-case extraction must not pay
for the survival and report stack (about 2 s and 300 MB before any work, issue 12's one-case target)."""

import json
import subprocess
import sys

from typer.testing import CliRunner

from gistrisk.cli import app

PROBE = """
import json, sys
from gistrisk.cli import main
sys.argv = ["gistrisk", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("gistrisk", "torch"))))
"""


def _modules_loaded_by(*args: str, package: str = "gistrisk") -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True).stdout
    return {m for m in json.loads(out.strip().splitlines()[-1]) if m.split(".")[0] == package}


def test_radiomics_extract_does_not_import_the_model_stack():
    loaded = _modules_loaded_by("radiomics", "extract", "--help")
    assert "gistrisk.radiomics.cli" in loaded
    heavy = {m for m in loaded if m.startswith(("gistrisk.survival", "gistrisk.report", "gistrisk.model_cli",
                                                 "gistrisk.pathology", "gistrisk.simulate"))}
    assert heavy == set()


def test_pathology_modules_load_timm_and_torchvision_only_to_build_an_encoder_or_decode_on_a_gpu():
    """timm and torchvision take 1.5-3 s to import (torchvision.ops imports torch._dynamo): a pathologist's
    `gistrisk pathology ...` pays them only when it builds a network or decodes on the GPU, not when any
    module of the pathology arm is imported."""
    probe = ("import importlib, json, pkgutil, sys\n"
             "import gistrisk.pathology as p\n"
             "names = [m.name for m in pkgutil.walk_packages(p.__path__, 'gistrisk.pathology.')]\n"
             "for n in names:\n"
             "    importlib.import_module(n)\n"
             "print(json.dumps([names, sorted(m for m in sys.modules if m.split('.')[0] in ('timm', 'torchvision'))]))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    names, heavy = json.loads(out.strip().splitlines()[-1])
    assert {"gistrisk.pathology.encoders", "gistrisk.pathology.model", "gistrisk.pathology.gpu_decode"} <= set(names)
    assert heavy == []


def test_pathology_commands_refuse_bad_inputs_before_importing_torch(tmp_path):
    """torch costs 2-5 s to import and a classifier's network 2 s to build: a misnamed slide, an empty
    embeddings folder or an impossible training setting is refused before either (`aggregate` never
    needs them)."""
    for name in ("x+y.svs", "x#y.svs"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    features = ("pathology", "features", "--classifier", str(tmp_path / "x+y.svs"), "--slides", str(tmp_path),
                "--out", str(tmp_path / "f.csv"), "--review-geojson", str(tmp_path / "review"))
    aggregate = ("pathology", "aggregate", "--embeddings", str(tmp_path / "empty"), "--out", str(tmp_path / "a.csv"))
    train = ("pathology", "train", "--tiles", str(tmp_path), "--out", str(tmp_path / "clf"), "--epochs", "0")
    for args in (features, aggregate, train):
        assert _modules_loaded_by(*args, package="torch") == set(), args


def test_every_command_is_listed_and_runs_its_help():
    runner = CliRunner()
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0
    for name in ("fit", "validate", "predict", "report", "simulate", "demo", "radiomics", "pathology"):
        assert name in top.output
        sub = runner.invoke(app, [name, "--help"])
        assert sub.exit_code == 0, (name, sub.output)
        assert "Usage" in sub.output
    assert "one case or a whole cohort" in top.output


def test_unknown_command_is_one_clear_line():
    r = CliRunner().invoke(app, ["fitt"])
    assert r.exit_code == 2
    assert "fitt" in r.output

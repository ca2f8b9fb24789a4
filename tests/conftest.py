"""Shared fixtures: the real data in ../shared/data (lung2 and its tumour region), and the command line run
in this process."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from gistrisk import cli

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path:
    env = os.environ.get("GISTRISK_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real test data; tests needing it skip with a reason when it is absent."""
    root = _shared_data()
    if not root.is_dir():
        pytest.skip(f"real data folder not found at {root} (set GISTRISK_SHARED_DATA)")
    return root


#: lung2's tumour bounding box (i, j, k, size_i, size_j, size_k) from PyRadiomics' baseline diagnostics
LUNG2_BBOX = (318, 333, 15, 87, 66, 11)


@pytest.fixture(scope="session")
def lung2_images(shared_data: Path) -> tuple[sitk.Image, sitk.Image]:
    """The full lung2 CT (512x512x61, HU) and its tumour label."""
    ct = shared_data / "ct"
    return sitk.ReadImage(str(ct / "lung2_image.nrrd")), sitk.ReadImage(str(ct / "lung2_label.nrrd"))


def _lung2_tumour_region(image: sitk.Image, mask: sitk.Image, pad: int = 6) -> tuple[sitk.Image, sitk.Image]:
    i, j, k, si, sj, sk = LUNG2_BBOX
    sl = (slice(i - pad, i + si + pad), slice(j - pad, j + sj + pad), slice(k - 1, k + sk + 1))
    return image[sl], mask[sl]


@pytest.fixture()
def lung2_crop(lung2_images) -> tuple[sitk.Image, sitk.Image]:
    """A small real CT: lung2 cropped to the tumour plus 6 voxels in-plane and one slice (fresh copies)."""
    return _lung2_tumour_region(*lung2_images)


@pytest.fixture(scope="session")
def lung2_crop_files(lung2_images, tmp_path_factory) -> tuple[Path, Path]:
    """:func:`lung2_crop` as lung2_image.nrrd and lung2_label.nrrd in a folder of their own."""
    img, msk = _lung2_tumour_region(*lung2_images)
    d = tmp_path_factory.mktemp("lung2crop")
    sitk.WriteImage(img, str(d / "lung2_image.nrrd"), useCompression=True)
    sitk.WriteImage(msk, str(d / "lung2_label.nrrd"), useCompression=True)
    return d / "lung2_image.nrrd", d / "lung2_label.nrrd"


def _stream_handlers() -> list[logging.StreamHandler]:
    loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values()
                                     if isinstance(lg, logging.Logger))]
    return [h for lg in loggers for h in lg.handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]


def _point(h: logging.StreamHandler, stream) -> None:
    """``h`` writes to ``stream`` from now on (no flush of its old stream, which may be closed)."""
    h.acquire()
    try:
        h.stream = stream
    finally:
        h.release()


def run_gistrisk(*args) -> subprocess.CompletedProcess[str]:
    """``gistrisk ARGS`` through the entry point ``python -m gistrisk`` runs (:func:`gistrisk.cli.main`),
    in this process: the exit status, stdout and stderr a subprocess would give, without its 2-3 s of
    start-up. Where a real run would end in a traceback (an exception ``main`` lets through) the
    exception is raised here.

    Logging as in a process of its own: handlers writing to this process's stdout or stderr (PyRadiomics
    adds one when first imported) write to the run's streams while it runs; afterwards the root logger's
    handlers and level are restored (the commands call ``logging.basicConfig``) and handlers created
    during the run write to this process's streams, not to the run's closed ones. Handlers left on a
    closed stream by an earlier in-process run (``CliRunner().invoke``) are treated as stderr ones.

    Tests of the process itself (``python -m gistrisk``, its exit code and stderr) keep using a
    subprocess: at least one per command (tests/survival/test_cli.py, tests/report/test_cli.py, ...)."""
    argv = ["gistrisk", *map(str, args)]
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    outer_streams = (sys.stdout, sys.stderr)
    outer = {id(sys.stdout): 0, id(sys.stderr): 1, id(sys.__stdout__): 0, id(sys.__stderr__): 1}
    before = {h: h.stream for h in _stream_handlers()}
    closed = {h for h, stream in before.items() if getattr(stream, "closed", False)}
    code: int = 0
    with CliRunner().isolation() as (out, err, _), mock.patch.object(sys, "argv", argv):
        run_streams = (sys.stdout, sys.stderr)
        for h, stream in before.items():
            if id(stream) in outer or h in closed:
                _point(h, run_streams[1 if h in closed else outer[id(stream)]])
        try:
            cli.main()
        except SystemExit as e:
            if isinstance(e.code, int) or e.code is None:
                code = e.code or 0
            else:  # as the interpreter does with SystemExit("message")
                print(e.code, file=sys.stderr)
                code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            root.handlers[:] = handlers
            root.setLevel(level)
            for h in _stream_handlers():
                if h in before:
                    _point(h, outer_streams[1] if h in closed else before[h])
                elif h.stream is run_streams[0] or h.stream is run_streams[1]:
                    _point(h, outer_streams[run_streams.index(h.stream)])
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    return subprocess.CompletedProcess(argv, code, stdout, stderr)


@pytest.fixture(scope="session")
def gistrisk_cli():
    """``gistrisk_cli(*args)``: the command line run in this process (:func:`run_gistrisk`)."""
    return run_gistrisk


def _open_files() -> list[str]:
    """What this process's file descriptors point to (paths, pipes), read from /proc (Linux)."""
    targets = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            targets.append(os.readlink(fd))
        except OSError:  # closed between listing and reading
            pass
    return targets


@pytest.fixture()
def open_files():
    """``open_files()``: what this process holds open (:func:`_open_files`); skips where /proc is missing."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc (Linux) to list open files")
    return _open_files


# ---- xdist: a costly fixture is built once ------------------------------------------------------------
#: folders whose conftest builds costly session fixtures that their tests only read (the report's fit,
#: the Slicer Logic's lung2 extraction and demo bundle, the simulated cohort): run on one worker each
SHARED_FIXTURE_FOLDERS = ("tests/report/", "tests/simulate/", "tests/slicer/")


@pytest.hookimpl(optionalhook=True)  # an xdist hook: the Python 3.12 Slicer venv runs pytest without xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadfile`` (the Makefile's): each test file runs on one worker, which builds its module
    fixtures once (``--dist load`` builds them on every worker that gets one of the file's tests), and so
    does each folder of :data:`SHARED_FIXTURE_FOLDERS` for its session fixtures. Files go out in collection
    order (see :func:`pytest_collection_modifyitems`), not the largest first. (``--dist loadgroup`` would
    say this with marks, but pytest 9.2 ignores xdist 3.8's groups: pytest-xdist issue 1386.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedFixtureScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            folder = next((f for f in SHARED_FIXTURE_FOLDERS if nodeid.startswith(f)), None)
            return folder or super()._split_scope(nodeid)

    config.option.loadscopereorder = False
    return SharedFixtureScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On xdist workers: the files holding a test marked ``slow`` first (each file's tests in their
    order), so that no long file starts last while the other worker idles."""
    if not hasattr(config, "workerinput"):
        return
    slow_files = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow_files)

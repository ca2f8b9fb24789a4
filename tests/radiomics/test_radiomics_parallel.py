"""One case's image types over several processes: the same features (bit for bit, same order), diagnostics
and warnings as the sequential run, and a sequential fallback that says why."""

from __future__ import annotations

import logging
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import yaml
from radiomics import featureextractor, generalinfo, imageoperations
from typer.testing import CliRunner

from gistrisk.cli import app
from gistrisk.errors import InputError
from gistrisk.radiomics import parallel
from gistrisk.radiomics.extract import extract_case

# Small but covering: per-image-type settings, a LoG sigma too large for the image (a warning in the
# middle of the loop), wavelet sub-bands, resegmentation, resampling; a few feature classes.
REDUCED = {
    "imageType": {"Original": {}, "Wavelet": {}, "LoG": {"sigma": [1.0, 60.0, 3.0], "binWidth": 10},
                  "Gradient": {}, "Square": {}},
    "featureClass": {"shape": [], "firstorder": [], "glcm": ["Contrast", "JointEntropy"], "glszm": []},
    "setting": {"resampledPixelSpacing": [2.0, 2.0, 2.0], "interpolator": "sitkBSpline", "padDistance": 10,
                "binWidth": 25, "voxelArrayShift": 1000, "label": 1, "resegmentRange": [-600, 400],
                "additionalInfo": True},
}


@pytest.fixture()
def reduced_params(tmp_path: Path) -> Path:
    p = tmp_path / "reduced.yaml"
    p.write_text(yaml.safe_dump(REDUCED))
    return p


class _Records(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _bits(values) -> bytes:
    return np.asarray(list(values), dtype=np.float64).tobytes()


def _same_case(par, seq) -> None:
    """Same feature names in the same order, bit-identical values, same diagnostics but the parallel record."""
    assert list(par.features) == list(seq.features)
    assert _bits(par.features.values()) == _bits(seq.features.values())
    diag = dict(par.diagnostics)
    diag.pop("gistrisk_parallel")
    assert list(diag) == list(seq.diagnostics) and diag == seq.diagnostics


def _same_raw(par: dict, seq: dict) -> None:
    assert list(par) == list(seq)
    for k, v in seq.items():
        w = par[k]
        if isinstance(v, (np.ndarray, np.generic)):
            assert type(w) is type(v) and np.asarray(w).dtype == np.asarray(v).dtype, k
            assert np.asarray(w).tobytes() == np.asarray(v).tobytes(), k
        else:
            assert w == v, k


def test_paper_parameters_on_the_lung2_tumour_two_workers_equal_sequential(lung2_crop) -> None:
    """Every image type of the paper's file (the whole lung2 CT: benchmarks/radiomics_one_case.py)."""
    image, mask = lung2_crop
    seq = extract_case(image, mask, "gist_ct_paper", workers=1)
    par = extract_case(image, mask, "gist_ct_paper", workers=2)
    assert len(seq.features) == 2246
    _same_case(par, seq)
    run = par.diagnostics["gistrisk_parallel"]
    assert run["workers"] == 2 and run["units_by_children"] >= 1  # the case was shared
    # shape, original, wavelet in 4 strides, LoG per sigma, 5 filters, LBP3D
    assert run["units"] == 1 + 1 + 4 + 7 + 5 + 1


@pytest.mark.parametrize("reseg", ["resegmented", "resegmented shape", "none"])
def test_raw_result_and_warnings_equal_pyradiomics_execute(lung2_crop, reseg: str) -> None:
    """Shape on the mask before resegmentation is computed first; otherwise it is a unit like the others."""
    image, mask = lung2_crop
    setting = dict(REDUCED["setting"], resegmentShape=reseg == "resegmented shape")
    if reseg == "none":
        del setting["resegmentRange"]
    extractor = featureextractor.RadiomicsFeatureExtractor(dict(REDUCED, setting=setting))
    handler = _Records(logging.WARNING)
    logging.getLogger("radiomics").addHandler(handler)
    try:
        seq = extractor.execute(image, mask, label=1)
    finally:
        logging.getLogger("radiomics").removeHandler(handler)
    par, warnings, run = parallel.execute(extractor, image, mask, 1, workers=3)
    _same_raw(par, seq)
    assert warnings == [r.getMessage() for r in handler.records]
    assert any("sigma(60)" in w for w in warnings)  # the too-large sigma, in its place among the others
    shape_unit = reseg != "resegmented"
    assert run.workers >= 2 and run.units == shape_unit + 1 + 6 + 3 + 1 + 1  # wavelet in 6 strides for 3 processes


def test_spawn_start_method_gives_the_same_result(lung2_crop, reduced_params: Path) -> None:
    """What Slicer on Windows/macOS uses: children import everything themselves and get the case pickled."""
    image, mask = lung2_crop
    extractor = featureextractor.RadiomicsFeatureExtractor(str(reduced_params))
    seq = extractor.execute(image, mask, label=1)
    par, _, run = parallel.execute(extractor, image, mask, 1, workers=2, start_method="spawn")
    _same_raw(par, seq)
    assert run.start_method == "spawn"


def test_progress_is_logged_for_every_image(lung2_crop, reduced_params: Path) -> None:
    """The Slicer module counts PyRadiomics' "Calculating features for" records: one per image, here too."""
    image, mask = lung2_crop
    counts = []
    for workers in (1, 2):
        handler = _Records(logging.INFO)
        logger = logging.getLogger("radiomics")
        old = logger.level
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        try:
            extract_case(image, mask, reduced_params, workers=workers)
        finally:
            logger.removeHandler(handler)
            logger.setLevel(old)
        counts.append(sorted(r.getMessage() for r in handler.records
                             if r.getMessage().startswith("Calculating features for")))
    assert counts[0] == counts[1] and len(counts[0]) == 1 + 8 + 2 + 1 + 1


def test_a_cancel_raised_by_a_progress_listener_stops_the_workers(lung2_crop, reduced_params: Path) -> None:
    """The Slicer module cancels by raising from its log handler: that reaches the caller, no child is left."""

    class Cancelled(Exception):
        pass

    class Listener(logging.Handler):
        seen = 0

        def handle(self, record: logging.LogRecord) -> bool:
            if record.getMessage().startswith("Calculating features for"):
                self.seen += 1
                if self.seen == 3:
                    raise Cancelled("cancelled by the user")
            return True

    image, mask = lung2_crop
    logger, listener = logging.getLogger("radiomics"), Listener()
    old = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(listener)
    try:
        with pytest.raises(Cancelled):
            extract_case(image, mask, reduced_params, workers=2)
    finally:
        logger.removeHandler(listener)
        logger.setLevel(old)
    assert not multiprocessing.active_children()


def test_one_core_runs_sequentially_and_says_so(lung2_crop, reduced_params: Path, monkeypatch) -> None:
    image, mask = lung2_crop
    seq = extract_case(image, mask, reduced_params, workers=1)
    monkeypatch.setattr(parallel, "available_cores", lambda: 1)
    par = extract_case(image, mask, reduced_params, workers=None)
    _same_case(par, seq)
    run = par.diagnostics["gistrisk_parallel"]
    assert run["workers"] == 1 and run["requested"] == 1 and "1 core" in run["notes"][0]


def test_one_image_type_starts_no_worker(lung2_crop) -> None:
    image, mask = lung2_crop
    seq = extract_case(image, mask, "pyradiomics_baseline", workers=1)
    par = extract_case(image, mask, "pyradiomics_baseline", workers=2)
    _same_case(par, seq)
    run = par.diagnostics["gistrisk_parallel"]
    assert run["workers"] == 1 and run["start_method"] is None and run["notes"] == ["sequential: a single image type"]


def test_workers_that_cannot_start_fall_back(lung2_crop, reduced_params: Path, monkeypatch) -> None:
    image, mask = lung2_crop
    seq = extract_case(image, mask, reduced_params, workers=1)

    class NoProcesses:
        def __init__(self, ctx):
            self.ctx = ctx

        def __getattr__(self, name):
            return getattr(self.ctx, name)

        def Process(self, *a, **k):  # noqa: N802 - multiprocessing's name
            raise OSError("fork: Resource temporarily unavailable")

    real = parallel.mp.get_context
    monkeypatch.setattr(parallel.mp, "get_context", lambda m=None: NoProcesses(real(m)))
    par = extract_case(image, mask, reduced_params, workers=2)
    _same_case(par, seq)
    run = par.diagnostics["gistrisk_parallel"]
    assert run["workers"] == 1 and "could not start" in run["notes"][0] and "Resource" in run["notes"][0]


@pytest.mark.skipif(parallel.default_start_method() != "fork", reason="the patched unit reaches children by fork")
def test_a_worker_that_dies_is_covered_by_the_caller(lung2_crop, reduced_params: Path, monkeypatch) -> None:
    image, mask = lung2_crop
    seq = extract_case(image, mask, reduced_params, workers=1)
    here, real = os.getpid(), parallel.run_unit

    def dies_in_a_child(*args):
        if os.getpid() != here:
            os._exit(3)  # killed mid-unit (out of memory, say)
        return real(*args)

    monkeypatch.setattr(parallel, "run_unit", dies_in_a_child)
    par = extract_case(image, mask, reduced_params, workers=2)
    _same_case(par, seq)
    run = par.diagnostics["gistrisk_parallel"]
    assert run["workers"] == 1 and run["units_by_children"] == 0
    assert any("recomputed here" in n for n in run["notes"])


def _exits_at_once(*args) -> None:
    os._exit(1)


def _never_reads(*args) -> None:
    time.sleep(60)


@pytest.mark.skipif(parallel.default_start_method() != "fork", reason="the stand-in child reaches it by fork")
@pytest.mark.parametrize("child", [_exits_at_once, _never_reads])
def test_a_child_that_never_works_does_not_hold_the_case(lung2_crop, reduced_params: Path, monkeypatch,
                                                         child) -> None:
    """E.g. Slicer's sys.executable is a launcher, not Python: a spawned child then dies or never reads the
    case. The calling process does every unit, does not wait for it, and says so."""
    image, mask = lung2_crop
    extractor = featureextractor.RadiomicsFeatureExtractor(str(reduced_params))
    seq = extractor.execute(image, mask, label=1)
    monkeypatch.setattr(parallel, "_child", child)
    # a filter whose first-use imports only the children warm is left to them, for a bounded time
    monkeypatch.setattr(parallel, "_LAZY_IMPORTS", {"Gradient": ("gistrisk_not_a_module",)})
    monkeypatch.setattr(parallel, "_LEAVE_TO_CHILD_S", 0.3)
    par, _, run = parallel.execute(extractor, image, mask, 1, workers=2)
    _same_raw(par, seq)
    assert run.workers == 1 and run.units_by_children == 0 and "took no unit" in run.notes[-1]


def test_an_error_in_an_image_type_is_the_same_error(lung2_crop, tmp_path: Path) -> None:
    image, mask = lung2_crop
    bad = dict(REDUCED, imageType={"Original": {}, "Wavelet": {"wavelet": "mexh"}, "Square": {},
                                   "Gradient": {}})
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(bad))
    messages = []
    for workers in (1, 2):
        with pytest.raises(InputError, match="PyRadiomics could not extract features") as e:
            extract_case(image, mask, p, workers=workers)
        messages.append(str(e.value))
    assert messages[0] == messages[1] and "mexh" in messages[0]


def test_cli_workers_option(lung2_crop_files, reduced_params: Path, tmp_path: Path) -> None:
    img, msk = lung2_crop_files
    runner = CliRunner()
    rows = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}" / "row.csv"
        r = runner.invoke(app, ["radiomics", "extract", "--image", str(img), "--mask", str(msk), "--params",
                                str(reduced_params), "--patient-id", "L2", "--out", str(out), "--workers", workers])
        assert r.exit_code == 0, r.output
        rows.append(out.read_text())
    assert rows[0] == rows[1]
    r = runner.invoke(app, ["radiomics", "extract", "--manifest", str(tmp_path / "m.csv"), "--out",
                            str(tmp_path / "f.csv"), "--workers", "2"])
    assert isinstance(r.exception, InputError) and "--workers is for one case" in str(r.exception)


def test_images_are_not_changed(lung2_crop) -> None:
    """The caller's image and mask are read, never modified (the children get copies)."""
    image, mask = lung2_crop
    before = sitk.Hash(image), sitk.Hash(mask)
    parallel.execute(featureextractor.RadiomicsFeatureExtractor(REDUCED), image, mask, 1, workers=2)
    assert (sitk.Hash(image), sitk.Hash(mask)) == before


def test_one_case_command_leaves_the_filters_first_use_imports_to_the_workers(lung2_crop_files,
                                                                               tmp_path: Path) -> None:
    """`gistrisk radiomics extract` ends after its one case: its process never imports pandas for a CSV row
    (0.4 s; the workers would start that much later) nor, while it waits on the workers, the modules LBP3D
    imports on first use (those only help a later call in a long-lived process: Slicer)."""
    img, msk = lung2_crop_files
    params = tmp_path / "lbp.yaml"
    params.write_text(yaml.safe_dump(dict(REDUCED, imageType={"Original": {}, "Square": {}, "LBP3D": {}})))
    out = tmp_path / "row.csv"
    code = ("import sys\n"
            "from gistrisk.radiomics.single import extract_single\n"
            "before = 'pandas' in sys.modules\n"
            f"w = extract_single({str(img)!r}, {str(msk)!r}, {str(out)!r}, params={str(params)!r}, workers=2)\n"
            "print(before, w['workers'], 'scipy.stats' in sys.modules, 'trimesh' in sys.modules,\n"
            "      'pandas' in sys.modules)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["False", "2", "False", "False", "False"]
    seq = extract_case(*(sitk.ReadImage(str(p)) for p in (img, msk)), params, workers=1)
    assert out.read_text().splitlines()[0].split(",")[1:] == list(seq.features)


def test_from_files_the_workers_start_before_the_case_is_read(lung2_crop_files, reduced_params: Path,
                                                             monkeypatch, tmp_path: Path) -> None:
    """Their first-use imports then overlap reading and checking the case; the input diagnostics, computed by
    the first worker from the case sent to it, are the sequential run's; a refused case leaves no worker."""
    from gistrisk.radiomics import extract as extract_module

    img, msk = lung2_crop_files
    seen: list[int] = []
    read = extract_module.read_image

    def reading(*args, **kwargs):
        seen.append(len(multiprocessing.active_children()))
        return read(*args, **kwargs)

    monkeypatch.setattr(extract_module, "read_image", reading)
    par = extract_module.extract_files(img, msk, params=reduced_params, workers=2)
    seq = extract_module.extract_files(img, msk, params=reduced_params, workers=1)
    assert seen == [1, 0]
    assert par.diagnostics["gistrisk_parallel"]["units_by_children"] >= 1
    assert "input diagnostics computed here" not in " ".join(par.diagnostics["gistrisk_parallel"]["notes"])
    _same_case(par, seq)

    empty = tmp_path / "empty.nrrd"
    blank = sitk.ReadImage(str(msk)) * 0
    sitk.WriteImage(blank, str(empty))
    with pytest.raises(InputError, match="empty"):
        extract_module.extract_files(img, empty, params=reduced_params, workers=2)
    deadline = time.monotonic() + 5
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("workers", [1, 2])
def test_input_hashes_do_not_wait_on_simpleitks_hash(lung2_crop, monkeypatch, workers: int) -> None:
    """The input image's and mask's SHA-1 (PyRadiomics' ``*-original_Hash``) are what ``sitk.Hash`` gives,
    computed by hashlib (on a full CT sitk.Hash costs 0.3-0.4 s per image, hashlib 4-8x less): the diagnostics
    equal ``execute``'s bit for bit, order included, though sitk.Hash is never called."""
    image, mask = lung2_crop
    extractor = featureextractor.RadiomicsFeatureExtractor(REDUCED)
    seq = extractor.execute(image, mask, label=1)

    def no_hash(*args, **kwargs):
        raise AssertionError("sitk.Hash called")

    monkeypatch.setattr(sitk, "Hash", no_hash)
    par, _, _ = parallel.execute(extractor, image, mask, 1, workers=workers)
    _same_raw(par, seq)


@pytest.mark.parametrize("pixel", [sitk.sitkUInt8, sitk.sitkInt16, sitk.sitkUInt32, sitk.sitkInt64,
                                   sitk.sitkFloat32, sitk.sitkFloat64])
def test_input_diagnostics_equal_pyradiomics_for_every_pixel_type(lung2_crop, pixel: int) -> None:
    image, mask = (sitk.Cast(sitk.Abs(x), pixel) for x in lung2_crop)
    settings = parallel.run_settings(featureextractor.RadiomicsFeatureExtractor(REDUCED), 1)
    reference = generalinfo.GeneralInfo()
    static = list(reference.getGeneralInfo())
    reference.addImageElements(image)
    reference.addMaskElements(None, imageoperations.getMask(mask, **settings), 1)
    expected = {k: v for k, v in reference.getGeneralInfo().items() if k not in static}
    diag = parallel.input_diagnostics(image, mask, settings)
    assert list(diag) == list(expected) and diag == expected

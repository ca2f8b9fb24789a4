"""The shared batch engine: caching by fingerprint, resume, failures, process pool and Dask."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from gistrisk.batch import BatchItem, cache_path, file_fingerprint, run_batch, safe_key
from gistrisk.errors import InputError


def count_label(inputs: dict) -> dict:
    """Worker: voxel count and label set of a label map (a real, small computation)."""
    import numpy as np
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(sitk.ReadImage(inputs["path"]))
    if inputs.get("fail"):
        raise ValueError(f"asked to fail on {inputs['path']}")
    return {"voxels": int(np.count_nonzero(arr)), "labels": sorted(int(v) for v in np.unique(arr) if v),
            "pid": os.getpid()}


def _items(paths: list[Path], fail: set[str] = frozenset()) -> list[BatchItem]:
    items = []
    for p in paths:
        inputs = {"path": str(p), "fail": p.name in fail}
        items.append(BatchItem(key=p.stem, inputs=inputs, fingerprint=file_fingerprint(p, params={"v": 1})))
    return items


@pytest.fixture()
def labels(shared_data: Path, tmp_path: Path) -> list[Path]:
    out = []
    for name in ("lung2_label.nrrd", "brain1_label.nrrd"):
        dst = tmp_path / "in" / name
        dst.parent.mkdir(exist_ok=True)
        shutil.copy(shared_data / "ct" / name, dst)
        out.append(dst)
    return out


def test_fingerprint_depends_on_bytes_and_params(labels: list[Path], tmp_path: Path) -> None:
    a, b = labels
    assert file_fingerprint(a, params="x") == file_fingerprint(a, params="x")
    assert file_fingerprint(a, params="x") != file_fingerprint(a, params="y")
    assert file_fingerprint(a, params="x") != file_fingerprint(b, params="x")
    moved = tmp_path / "moved.nrrd"
    shutil.copy(a, moved)
    assert file_fingerprint(moved, params="x") == file_fingerprint(a, params="x")  # contents, not names
    d = tmp_path / "dir"
    d.mkdir()
    shutil.copy(a, d / "x.nrrd")
    f1 = file_fingerprint(d, params={})
    (d / "y.txt").write_text("more")
    assert file_fingerprint(d, params={}) != f1


def test_safe_key_is_unique_and_file_safe() -> None:
    k1, k2 = safe_key("pat/01 a"), safe_key("pat_01_a")
    assert k1 != k2 and "/" not in k1 and " " not in k1


def test_serial_run_caches_and_resumes(labels: list[Path], tmp_path: Path) -> None:
    items = _items(labels)
    cache = tmp_path / "cache"
    r1 = run_batch(items, count_label, cache_dir=cache, progress=False)
    assert list(r1.done) == ["lung2_label", "brain1_label"] and r1.failures == [] and r1.skipped_cached == 0
    assert r1.done["lung2_label"]["voxels"] == 24644  # per the data README
    rec = json.loads(cache_path(cache, "lung2_label").read_text())
    assert rec["fingerprint"] == items[0].fingerprint and rec["result"] == r1.done["lung2_label"]

    r2 = run_batch(items, count_label, cache_dir=cache, progress=False)
    assert r2.skipped_cached == 2 and r2.done == r1.done

    # a changed fingerprint (new parameters) recomputes that item only
    items[1].fingerprint = file_fingerprint(labels[1], params={"v": 2})
    r3 = run_batch(items, count_label, cache_dir=cache, progress=False)
    assert r3.skipped_cached == 1 and r3.done["brain1_label"]["voxels"] == r1.done["brain1_label"]["voxels"]


def test_failure_is_recorded_batch_goes_on_and_is_retried(labels: list[Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    r = run_batch(_items(labels, fail={"lung2_label.nrrd"}), count_label, cache_dir=cache, progress=False)
    assert list(r.done) == ["brain1_label"]
    (f,) = r.failures
    assert f["key"] == "lung2_label" and f["error_type"] == "ValueError" and "lung2_label.nrrd" in f["message"]
    assert f["inputs"]["path"] == str(labels[0])
    # failures are not cached: a fixed input succeeds on the re-run, the done one is skipped
    r2 = run_batch(_items(labels), count_label, cache_dir=cache, progress=False)
    assert r2.skipped_cached == 1 and set(r2.done) == {"lung2_label", "brain1_label"} and not r2.failures


def test_corrupt_cache_file_is_recomputed(labels: list[Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    items = _items(labels)
    run_batch(items, count_label, cache_dir=cache, progress=False)
    cache_path(cache, "lung2_label").write_text("{ truncated")
    r = run_batch(items, count_label, cache_dir=cache, progress=False)
    assert r.skipped_cached == 1 and r.done["lung2_label"]["voxels"] == 24644


def test_duplicate_keys_rejected(labels: list[Path], tmp_path: Path) -> None:
    items = _items([labels[0], labels[0]])
    with pytest.raises(InputError, match="duplicate keys"):
        run_batch(items, count_label, cache_dir=tmp_path, progress=False)


def test_process_pool_matches_serial(labels: list[Path], tmp_path: Path) -> None:
    serial = run_batch(_items(labels), count_label, cache_dir=tmp_path / "a", progress=False)
    par = run_batch(_items(labels, fail={"brain1_label.nrrd"}), count_label, cache_dir=tmp_path / "b",
                    jobs=2, progress=False)
    assert par.done["lung2_label"]["voxels"] == serial.done["lung2_label"]["voxels"]
    assert par.done["lung2_label"]["pid"] != os.getpid()  # really ran in another process
    assert [f["key"] for f in par.failures] == ["brain1_label"]


def test_dask_scheduler_address(labels: list[Path], tmp_path: Path) -> None:
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                      dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://")
        r = run_batch(_items(labels, fail={"brain1_label.nrrd"}), count_label, cache_dir=tmp_path,
                      scheduler=cluster.scheduler_address, progress=False)
    assert r.done["lung2_label"]["voxels"] == 24644
    assert [f["key"] for f in r.failures] == ["brain1_label"]
    assert cache_path(tmp_path, "lung2_label").exists()

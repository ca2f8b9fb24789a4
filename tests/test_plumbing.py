"""Shared plumbing, one implementation each: atomic writes with the permissions of an ordinary open()."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat

import numpy as np
import pandas as pd
import pytest

from gistrisk.atomic import write_json, write_row, write_table
from gistrisk.batch import file_fingerprint
from gistrisk.provenance import file_sha256
from gistrisk.radiomics import tables


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_feature_table_from_the_radiomics_writer_is_group_readable(tmp_path, suffix):
    """On a shared cluster (umask 002) the group reads what a cohort run wrote, as with open()."""
    with umask(0o002):
        tables.write_rows(tmp_path / f"features{suffix}", [{"patient_id": "a", "f": 1.5}])
        tables.write_json(tmp_path / "provenance.json", {"n": 1})
        write_json(tmp_path / "model.json", {"n": 1})
    for name in (f"features{suffix}", "provenance.json", "model.json"):
        assert mode(tmp_path / name) == 0o664, name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["provenance.json", "model.json",
                                                                 f"features{suffix}"])  # no temp file left


def test_a_private_umask_is_respected(tmp_path):
    with umask(0o077):
        tables.write_rows(tmp_path / "f.csv", [{"patient_id": "a"}])
        write_table(tmp_path / "t.csv", pd.DataFrame({"a": [1]}))
    assert mode(tmp_path / "f.csv") == mode(tmp_path / "t.csv") == 0o600


def test_file_hashes_agree(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_bytes(b"x" * (3 << 20))  # more than one read chunk
    assert file_sha256(p) == hashlib.sha256(p.read_bytes()).hexdigest()
    assert file_fingerprint(p) == hashlib.sha256(p.read_bytes() + b"\0").hexdigest()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_one_row_is_written_as_the_table_writer_writes_it(tmp_path, suffix):
    """The one-case command writes its row without pandas for CSV: byte for byte what pandas writes (shortest
    round-trip floats, NaN empty, quoting), so tables from either path read the same."""
    rng = np.random.default_rng(0)
    values = rng.standard_normal(300) * 10.0 ** rng.integers(-300, 300, 300)
    row = {"patient_id": 'P, "1" 胃间质瘤', "n": 3, "missing": None, "flag": True,
           **{f"f{i}": float(v) for i, v in enumerate(values)},
           "nan": float("nan"), "inf": float("inf"), "ninf": -np.inf, "zero": -0.0, "tiny": 5e-324,
           "np": np.float64(0.1), "big": 1e16}
    write_row(tmp_path / f"row{suffix}", row)
    write_table(tmp_path / f"table{suffix}", pd.DataFrame([row]))
    if suffix == ".csv":
        assert (tmp_path / "row.csv").read_bytes() == (tmp_path / "table.csv").read_bytes()
    else:
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "row.parquet"),
                                      pd.read_parquet(tmp_path / "table.parquet"))

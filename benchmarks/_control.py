"""The control the side-by-side benchmarks measure with each run: how much 2 processes can gain now
on this machine (2.0 on two idle cores, less when other jobs share them)."""

from __future__ import annotations

import mmap
import multiprocessing as mp
import sys
import time


def _spin(n: int) -> int:
    """Pure CPU work (no memory traffic, no threads)."""
    acc = 0
    for i in range(n):
        acc = (acc + i * i) % 1_000_003
    return acc


def parallel_headroom(n: int) -> float:
    """Speed-up of 2 processes over 1 on the same total pure-CPU work, measured now."""
    t0 = time.perf_counter()
    _spin(n)
    _spin(n)
    seq = time.perf_counter() - t0
    with mp.get_context("fork" if sys.platform.startswith("linux") else "spawn").Pool(2) as pool:
        t0 = time.perf_counter()
        pool.map(_spin, [n, n])
        par = time.perf_counter() - t0
    return seq / par


def spin_seconds(n: int = 5_000_000) -> float:
    """Seconds one process takes for a fixed pure-CPU job now: this machine's speed at the moment (it
    drifts by a factor of two on shared sandboxes), so that times taken at different moments compare."""
    t0 = time.perf_counter()
    _spin(n)
    return time.perf_counter() - t0


def fresh_memory_seconds(mb: int = 256) -> float:
    """Seconds to map and touch ``mb`` MB of fresh memory (one page fault per 4 KB page). On this project's
    sandboxes the slow phases are here, not in the CPU: every new process and import pays them."""
    t0 = time.perf_counter()
    m = mmap.mmap(-1, mb << 20)
    for offset in range(0, mb << 20, mmap.PAGESIZE):
        m[offset] = 1
    m.close()
    return time.perf_counter() - t0

"""`make test` on a clean clone, timed, with this machine's speed measured before and after.

The issue's target is `make test` under 3 minutes on 2 cores on a clean clone with the shared environment
present. A shared sandbox runs the same CPU work up to twice as slowly from one hour to the next, so the
run is bracketed by a control: the seconds one process takes for a fixed pure-CPU job
(`_control.spin_seconds`), to map and touch 256 MB of fresh memory (`_control.fresh_memory_seconds`: where
this sandbox's slow phases show) and how much 2 processes gain over 1 (`_control.parallel_headroom`). The
clone goes next to this repository (``../shared`` must be its sibling too, or the data tests skip).

    .venv/bin/python benchmarks/make_test_time.py [--clone ../gistrisk-test-loop]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import time
from pathlib import Path

from _control import fresh_memory_seconds, parallel_headroom, spin_seconds

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 180.0
MARKER = ".make_test_time"  # in a clone this script made (and may delete)


def control() -> tuple[float, float, float]:
    return spin_seconds(), fresh_memory_seconds(), parallel_headroom(3_000_000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clone", type=Path, default=REPO.parent / "gistrisk-test-loop",
                    help="where to clone (a sibling of this repository, beside ../shared)")
    args = ap.parse_args()
    if args.clone.exists():
        if not (args.clone / MARKER).is_file():  # never delete a folder this script did not make
            raise SystemExit(f"--clone {args.clone} exists and is not a clone this script made; give a new path")
        shutil.rmtree(args.clone)
    subprocess.run(["git", "clone", "-q", str(REPO), str(args.clone)], check=True)
    (args.clone / MARKER).write_text("made by benchmarks/make_test_time.py; deleted when it ends\n")
    before = control()
    t0 = time.perf_counter()
    run = subprocess.run(["make", "test"], cwd=args.clone, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = control()
    tail = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    pytest_s = re.search(r" in ([0-9.]+)s", tail)
    print(f"make test on a clean clone: exit {run.returncode}, {wall:.0f} s wall "
          f"(pytest {pytest_s.group(1) if pytest_s else '?'} s: {tail})")
    print(f"control before / after: one process {before[0]:.2f} / {after[0]:.2f} s for the fixed CPU job, "
          f"{before[1]:.2f} / {after[1]:.2f} s to touch 256 MB of fresh memory, "
          f"2 processes vs 1 {before[2]:.2f}x / {after[2]:.2f}x")
    print(f"ratio to the 3-minute target: {wall / TARGET_S:.2f}")
    shutil.rmtree(args.clone)
    if run.returncode != 0:
        raise SystemExit(run.stderr[-3000:] or run.stdout[-3000:])


if __name__ == "__main__":
    main()

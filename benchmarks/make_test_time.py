"""`make test` on a clean clone, timed, with this machine's speed measured before and after.

The issue's target is `make test` under 3 minutes on 2 cores on a clean clone with the shared environment
present. A shared sandbox runs the same CPU work up to twice as slowly from one hour to the next, so each
run is bracketed by a control: the seconds one process takes for a fixed pure-CPU job
(`_control.spin_seconds`), to map and touch 256 MB of fresh memory (`_control.fresh_memory_seconds`: where
this sandbox's slow phases show) and how much 2 processes gain over 1 (`_control.parallel_headroom`). With
``--against REV`` a clean clone of REV and one of HEAD are timed alternately, ``--rounds`` times each: a
change's effect measured back to back rather than across the machine's slow and fast hours. The clone goes
next to this repository (``../shared`` must be its sibling too, or the data tests skip).

    .venv/bin/python benchmarks/make_test_time.py [--clone ../gistrisk-test-loop] [--against REV --rounds 2]
"""

from __future__ import annotations

import argparse
import re
import resource
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from _control import fresh_memory_seconds, parallel_headroom, spin_seconds

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 180.0
MARKER = ".make_test_time"  # in a clone this script made (and may delete)


def control() -> tuple[float, float, float]:
    return spin_seconds(), fresh_memory_seconds(), parallel_headroom(3_000_000)


def children_cpu() -> float:
    """User + system seconds of every finished child process (and theirs) so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def fresh_clone(clone: Path, rev: str) -> None:
    if clone.exists():
        if not (clone / MARKER).is_file():  # never delete a folder this script did not make
            raise SystemExit(f"--clone {clone} exists and is not a clone this script made; give a new path")
        shutil.rmtree(clone)
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    (clone / MARKER).write_text("made by benchmarks/make_test_time.py; deleted when it ends\n")
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", rev], check=True)


def timed_run(clone: Path, rev: str) -> float:
    """``make test`` on a clean clone of ``rev``, bracketed by the control; prints one block, returns wall s."""
    fresh_clone(clone, rev)
    before = control()
    cpu0, t0 = children_cpu(), time.perf_counter()
    run = subprocess.run(["make", "test"], cwd=clone, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    after = control()
    shutil.rmtree(clone)
    tail = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    pytest_s = re.search(r" in ([0-9.]+)s", tail)
    print(f"{rev}: make test on a clean clone: exit {run.returncode}, {wall:.0f} s wall, {cpu:.0f} s CPU "
          f"(pytest {pytest_s.group(1) if pytest_s else '?'} s: {tail})")
    print(f"  control before / after: one process {before[0]:.2f} / {after[0]:.2f} s for the fixed CPU job, "
          f"{before[1]:.2f} / {after[1]:.2f} s to touch 256 MB of fresh memory, "
          f"2 processes vs 1 {before[2]:.2f}x / {after[2]:.2f}x")
    print(f"  ratio to the 3-minute target: {wall / TARGET_S:.2f}", flush=True)
    if run.returncode != 0:
        raise SystemExit(run.stderr[-3000:] or run.stdout[-3000:])
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clone", type=Path, default=REPO.parent / "gistrisk-test-loop",
                    help="where to clone (a sibling of this repository, beside ../shared)")
    ap.add_argument("--against", metavar="REV", help="also time this revision, alternating with HEAD")
    ap.add_argument("--rounds", type=int, default=1, help="runs of each revision (default 1)")
    args = ap.parse_args()
    if args.rounds < 1:
        raise SystemExit(f"--rounds must be at least 1, got {args.rounds}")
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    if args.against and subprocess.run(["git", "-C", str(REPO), "rev-parse", "-q", "--verify",
                                        f"{args.against}^{{commit}}"], capture_output=True).returncode != 0:
        raise SystemExit(f"--against {args.against}: not a revision of {REPO}")
    revs = [args.against, head] if args.against else [head]
    walls: dict[str, list[float]] = {rev: [] for rev in revs}
    for _ in range(args.rounds):
        for rev in revs:
            walls[rev].append(timed_run(args.clone, rev))
    if len(revs) > 1 or args.rounds > 1:
        print("median wall: " + ", ".join(f"{rev} {statistics.median(w):.0f} s" for rev, w in walls.items()))


if __name__ == "__main__":
    main()

"""C-index with bootstrap intervals (`c_index_summary`) vs scikit-survival's C-indices on every resample.

The peer computes Harrell's C (``concordance_index_censored``) and Uno's C (``concordance_index_ipcw``, the
censoring weights of the full cohort, as ours) on each resampled set of rows; ours counts every resample's
pairs at once (``bootstrap_c``). Same seeded resamples on both sides: the intervals must be equal, and the
script stops if they are not. Prints seconds and the ratio ours / peer per cohort size.

    .venv/bin/python benchmarks/cindex_bootstrap.py [--patients 150 300 1000] [--boot 500]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
from sksurv.metrics import concordance_index_censored, concordance_index_ipcw

from gistrisk.survival.evaluation import as_surv, c_index_summary, percentile_ci, resamples


def peer(time_: np.ndarray, event: np.ndarray, risk: np.ndarray, n_boot: int, seed: int, tau: float):
    """Both intervals from scikit-survival's functions on each resample."""
    n = len(time_)
    survival = as_surv(time_, event)

    def harrell(i):
        try:
            return concordance_index_censored(event[i], time_[i], risk[i])[0]
        except ValueError:  # no comparable pair
            return np.nan

    def uno(i):
        try:
            return concordance_index_ipcw(survival, survival[i], risk[i], tau=tau)[0]
        except ValueError:  # censoring survival zero at an event time
            return np.nan

    ci = percentile_ci(np.array([harrell(i) for i in resamples(n, n_boot, seed)], float))
    u_ci = percentile_ci(np.array([uno(i) for i in resamples(n, max(100, n_boot // 5), seed)], float))
    return list(ci), list(u_ci)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, nargs="+", default=[150, 300, 1000])
    ap.add_argument("--boot", type=int, default=500)
    args = ap.parse_args()
    print(f"machine: {platform.node()} ({platform.machine()}), bootstrap {args.boot} (Uno's: "
          f"{max(100, args.boot // 5)})")
    print("patients  ours_s  peer_s  ratio")
    for n in args.patients:
        rng = np.random.default_rng(n)
        time_ = np.round(rng.exponential(40, n), 1)
        event = rng.random(n) < 0.45
        risk = np.round(rng.normal(size=n) - 0.02 * time_, 2)
        t0 = time.perf_counter()
        ours = c_index_summary(time_, event, risk, n_boot=args.boot, seed=0)
        t1 = time.perf_counter()
        ci, u_ci = peer(time_, event, risk, args.boot, 0, ours["uno_tau"])
        t2 = time.perf_counter()
        if ours["c_index_ci"] != ci or not np.allclose(ours["uno_c_index_ci"], u_ci, rtol=1e-12, atol=0):
            raise SystemExit(f"{n} patients: intervals differ: ours {ours['c_index_ci']} {ours['uno_c_index_ci']}, "
                             f"scikit-survival {ci} {u_ci}")
        print(f"{n:8d}  {t1 - t0:6.3f}  {t2 - t1:6.2f}  {(t1 - t0) / (t2 - t1):.4f}")


if __name__ == "__main__":
    main()

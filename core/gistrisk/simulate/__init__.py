"""Simulated multimodal GIST cohorts with a known ground truth."""

from __future__ import annotations

from typing import Any

# gistrisk.simulate.study is imported on first call: the CLI imports this package to list `simulate` and
# `demo`, and the simulator's stack adds about 1.9 s to that (measured).


def simulate_cohort(*args: Any, **kwargs: Any):
    """See :func:`gistrisk.simulate.study.simulate_cohort` (imported lazily to keep the CLI fast)."""
    from gistrisk.simulate.study import simulate_cohort as _impl  # noqa: PLC0415 - see above

    return _impl(*args, **kwargs)

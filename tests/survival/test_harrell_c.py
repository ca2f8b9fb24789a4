"""Harrell's C equals scikit-survival's concordance_index_censored exactly (ties in time and risk included)."""

import numpy as np
import pytest
from sksurv.metrics import concordance_index_censored

from gistrisk.survival.evaluation import harrell_c


@pytest.mark.parametrize("seed", range(40))
def test_equals_scikit_survival_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    time = rng.integers(1, max(2, n // 3), n).astype(float)  # many tied times
    event = rng.uniform(size=n) < rng.uniform(0.2, 0.9)
    event[0] = True
    risk = np.round(rng.normal(size=n), int(rng.integers(0, 3)))  # many tied risks
    risk[: n // 10] += 1e-9  # ties within sksurv's tolerance
    expected = concordance_index_censored(event, time, risk)[0]
    assert harrell_c(time, event, risk) == expected


def test_no_event_no_comparable_pair_or_nan_gives_nan():
    assert np.isnan(harrell_c([1, 2], [0, 0], [0.1, 0.2]))
    assert np.isnan(harrell_c([3, 3], [1, 1], [0.1, 0.2]))  # tied event times are not comparable
    assert np.isnan(harrell_c([1, 2, 3], [1, 0, 1], [0.1, np.nan, 0.2]))

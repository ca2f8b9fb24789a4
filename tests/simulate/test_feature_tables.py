"""The table-level twin of the simulated cohort (``gistrisk.simulate.feature_tables``)."""

from __future__ import annotations

from gistrisk.pathology.columns import feature_columns
from gistrisk.simulate.feature_tables import FeatureEmulation, simulate_tables


def test_slide_feature_columns_follow_the_pathology_arms_rule():
    # past 10 000 features the names widen to 5 digits (path_00000..path_10000), as real tables name them
    tables = simulate_tables(12, 6, seed=0, emulation=FeatureEmulation(n_deep=10_001))
    for cohort in tables.values():
        assert list(cohort["pathology"].columns) == feature_columns(10_001)

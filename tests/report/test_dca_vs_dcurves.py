"""Decision curves against ``dcurves`` (the Python port of Vickers' dca/stdca; a test-only dependency),
on its own example data (Vickers' tutorial cohort of 750 patients): binary outcome and survival at a horizon."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter

from gistrisk.report.decision_curve import decision_curve

dcurves = pytest.importorskip("dcurves", reason="test-only dependency: pip install -e .[test]")

THRESHOLDS = [0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6]


def _reference(data, **kw) -> pd.DataFrame:
    ref = dcurves.dca(data=data, outcome="cancer", modelnames=["cancerpredmarker", "famhistory"],
                      thresholds=THRESHOLDS, **kw)
    return ref.pivot(index="threshold", columns="model", values="net_benefit").astype(float)


def _ours(time, event, horizon, data) -> pd.DataFrame:
    return decision_curve(time, event, horizon, THRESHOLDS, risks={"cancerpredmarker": data["cancerpredmarker"]},
                          rules={"famhistory": data["famhistory"].to_numpy() == 1})


def test_net_benefit_binary_outcome_matches_dcurves():
    d = pd.read_csv(Path(dcurves.data) / "df_binary.csv")
    ref = _reference(d)
    # a binary outcome is survival with everyone followed past the horizon: events at 1, non-events at 2
    event = d["cancer"].astype(int).to_numpy()
    ours = _ours(np.where(event == 1, 1.0, 2.0), event, 1.5, d)
    for ours_col, ref_col in (("cancerpredmarker", "cancerpredmarker"), ("famhistory", "famhistory"),
                              ("treat all", "all"), ("treat none", "none")):
        np.testing.assert_allclose(ours[ours_col].to_numpy(), ref[ref_col].to_numpy(), atol=1e-12, err_msg=ours_col)
    # Vickers' tutorial: prevalence 14%, treat all at 10% = 0.14 - 0.86 / 9
    assert ours.loc[0.1, "treat all"] == pytest.approx(0.14 - 0.86 / 9)


@pytest.mark.parametrize("horizon", [1.0, 1.5, 2.0])
def test_net_benefit_survival_at_a_horizon_matches_dcurves(horizon):
    d = pd.read_csv(Path(dcurves.data) / "df_surv.csv")
    ref = _reference(d, time=horizon, time_to_outcome_col="ttcancer")
    time, event = d["ttcancer"].to_numpy(float), d["cancer"].astype(int).to_numpy()
    ours = _ours(time, event, horizon, d)
    for ours_col, ref_col in (("cancerpredmarker", "cancerpredmarker"), ("famhistory", "famhistory"),
                              ("treat all", "all")):
        a, b = ours[ours_col].to_numpy(), ref[ref_col].to_numpy()
        known = np.isfinite(b)
        assert known.sum() >= 8, ours_col
        np.testing.assert_allclose(a[known], b[known], atol=1e-12, err_msg=ours_col)
        # dcurves gives up wherever the treated are all followed less than the horizon; so do we, except
        # where their KM has reached 0 (the last of them recurred): it stays 0, so NB = P(treated)
        for pt in ours.index[~known]:
            if np.isnan(ours.loc[pt, ours_col]):
                continue
            assert ours_col == "cancerpredmarker"
            treated = d["cancerpredmarker"].to_numpy() >= pt
            km = KaplanMeierFitter().fit(time[treated], event[treated])
            assert time[treated].max() < horizon and km.survival_function_.iloc[-1, 0] == 0
            assert ours.loc[pt, ours_col] == pytest.approx(treated.mean())
    assert (ours["cancerpredmarker"] > ours["treat all"]).loc[0.2:0.4].all()  # the example's point

"""Kaplan-Meier curves, numbers at risk, reverse-KM follow-up and log-rank of the report against lifelines
and scikit-survival on the German Breast Cancer Study Group 2 data (GBSG2, 686 patients)."""

import numpy as np
import pytest
from lifelines import KaplanMeierFitter
from lifelines.statistics import logrank_test, multivariate_logrank_test
from sksurv.compare import compare_survival
from sksurv.datasets import load_gbsg2
from sksurv.nonparametric import kaplan_meier_estimator

from gistrisk.report.plots import km_figure
from gistrisk.survival.evaluation import km_logrank, numbers_at_risk
from gistrisk.survival.km import km_at, km_curve, reverse_km_median_follow_up


@pytest.fixture(scope="module")
def gbsg2():
    X, y = load_gbsg2()
    return (y["time"] / (365.25 / 12)).astype(float), y["cens"].astype(int), X["horTh"].astype(str).to_numpy()


def test_km_curve_matches_lifelines_and_sksurv(gbsg2):
    t, e, g = gbsg2
    for m in (np.ones(len(t), bool), g == "yes", g == "no"):
        times, surv = km_curve(t[m], e[m])
        lf = KaplanMeierFitter().fit(t[m], e[m])
        np.testing.assert_allclose(surv, lf.survival_function_at_times(times).to_numpy(), rtol=1e-12)
        sk_t, sk_s = kaplan_meier_estimator(e[m].astype(bool), t[m])
        np.testing.assert_allclose(surv, sk_s[np.isin(sk_t, times)], rtol=1e-12)
        for h in (12.0, 36.0, 60.0, 0.5):
            assert km_at(t[m], e[m], h) == pytest.approx(float(lf.predict(h)), rel=1e-12)
        assert np.isnan(km_at(t[m], e[m], t[m].max() + 1))  # lifelines carries the last value on; we do not
        # reverse Kaplan-Meier median follow-up: censoring as the event
        rev = KaplanMeierFitter().fit(t[m], 1 - e[m]).median_survival_time_
        assert reverse_km_median_follow_up(t[m], e[m]) == pytest.approx(rev)


def test_logrank_and_curves_of_the_report_match_lifelines_and_sksurv(gbsg2):
    t, e, g = gbsg2
    res = km_logrank(t, e, g)
    lr = logrank_test(t[g == "yes"], t[g == "no"], e[g == "yes"], e[g == "no"])
    assert res["logrank_p"] == pytest.approx(lr.p_value, rel=1e-9)
    chi2, p = compare_survival(np.array(list(zip(e.astype(bool), t)), dtype=[("e", bool), ("t", float)]), g)
    assert res["logrank_p"] == pytest.approx(p, rel=1e-9) and chi2 == pytest.approx(lr.test_statistic, rel=1e-9)
    # the published survdiff(Surv(time, cens) ~ horTh, data = GBSG2): chi-square 8.6 on 1 df, p = 0.003
    assert round(lr.test_statistic, 1) == 8.6 and round(res["logrank_p"], 3) == 0.003
    three = np.array(["a", "b", "c"])[np.arange(len(t)) % 3]
    assert km_logrank(t, e, three)["logrank_p"] == pytest.approx(multivariate_logrank_test(t, three, e).p_value)
    for grp, c in res["curves"].items():
        m = g == grp
        times, surv = km_curve(t[m], e[m])
        on = np.isin(np.asarray(c["time"]), times)
        np.testing.assert_allclose(np.asarray(c["survival"])[on], surv, rtol=1e-12)
        assert c["n"] == m.sum() and c["events"] == e[m].sum()


def test_numbers_at_risk_and_the_km_figure(gbsg2):
    t, e, g = gbsg2
    ticks = np.array([0, 12, 24, 36, 48, 60])
    at = numbers_at_risk(t, g, ticks)
    for grp in ("no", "yes"):
        m = g == grp
        table = KaplanMeierFitter().fit(t[m], e[m]).event_table
        # lifelines: at risk just before t = everyone minus those removed (event or censored) before t
        expected = [int(m.sum() - table.loc[table.index < x, "removed"].sum()) for x in ticks]
        assert at[grp] == expected
    res = km_logrank(t, e, g)
    metrics = {"fusion": {"km": res["curves"], "logrank_p": res["logrank_p"],
                          "at_risk": {"times": ticks.tolist(), **at}}}
    fig = km_figure(metrics, ["fusion"])
    ax, ax_r = fig.axes[:2]
    drawn = {ln.get_label().split(" ")[0]: ln for ln in ax.get_lines()}
    for grp in ("no", "yes"):
        m = g == grp
        x = np.asarray(drawn[grp].get_xdata(), float)
        lf = KaplanMeierFitter().fit(t[m], e[m])
        y = np.asarray(drawn[grp].get_ydata(), float)
        np.testing.assert_allclose(y, lf.survival_function_at_times(x).to_numpy())
    shown = sorted(int(tx.get_text()) for tx in ax_r.texts)
    assert shown == sorted(at["no"] + at["yes"])
    assert "p = 0.003" in ax.get_title()

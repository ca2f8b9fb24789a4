"""Calibration figure and table when a risk group has no patient followed to the horizon."""

import numpy as np

from gistrisk.report.cohort_report import calibration_rows
from gistrisk.report.plots import calibration_plot


def _cal() -> dict:
    """validate's calibration of the fused model, as survival.evaluation.calibration now writes it."""
    def g(pred, n, at_risk, obs=None, ci=(None, None)):
        return {"predicted": pred, "n": n, "n_at_risk": at_risk, "estimable": at_risk > 0,
                "observed": obs if at_risk else None, "observed_ci": list(ci) if at_risk else [None, None]}
    return {"36": {"horizon": 36.0, "groups": [g(0.9, 12, 9, 0.88, (0.7, 0.96)), g(0.75, 12, 5, 0.7, (0.45, 0.85)),
                                               g(0.5, 11, 2, 0.4, (0.15, 0.65))], "not_estimable": []},
            "60": {"horizon": 60.0, "groups": [g(0.85, 12, 3, 0.8, (0.55, 0.92)), g(0.6, 12, 0), g(0.3, 11, 0)],
                   "not_estimable": [1, 2]}}


def _points(ax) -> np.ndarray:
    """x of the drawn calibration points (the errorbar labelled late fusion); empty when none."""
    bars = [c for c in ax.containers if c.get_label() == "late fusion"]
    return np.asarray(bars[0].lines[0].get_xdata(), float) if bars else np.array([])


def test_plot_skips_points_that_are_not_estimable():
    fig = calibration_plot(_cal())
    ax36, ax60 = fig.axes[:2]
    assert len(_points(ax36)) == 3
    assert _points(ax60).tolist() == [0.85]
    assert [t.get_text() for t in ax60.texts if t.get_text().startswith("n=")] == ["n=12"]
    assert "2 groups not estimable" in ax60.get_title()


def test_plot_with_no_estimable_point_at_all():
    cal = _cal()
    cal["60"]["groups"][0].update(n_at_risk=0, estimable=False, observed=None, observed_ci=[None, None])
    fig = calibration_plot(cal)
    assert "3 groups not estimable" in fig.axes[1].get_title() and len(_points(fig.axes[1])) == 0


def test_old_metrics_without_the_new_fields_still_plot():
    cal = {"36": {"horizon": 36.0, "groups": [{"predicted": 0.8, "observed": 0.7, "observed_ci": [0.5, 0.85], "n": 20},
                                              {"predicted": 0.5, "observed": 0.45, "observed_ci": [float("nan")] * 2,
                                               "n": 20}]}}
    fig = calibration_plot(cal)
    assert len(_points(fig.axes[0])) == 2 and "not estimable" not in fig.axes[0].get_title()


def test_table_rows_and_notes():
    rows, notes = calibration_rows(_cal())
    assert len(rows) == 6
    r = [r for r in rows if r["horizon"] == "60 months"]
    assert [x["n_at_risk"] for x in r] == ["3", "0", "0"]
    assert r[0]["observed"] == "0.800 (0.550–0.920)"
    assert r[1]["observed"] == r[2]["observed"] == "not estimable (no patient of this group followed to 60 months)"
    assert notes == ["60 months: 2 of 3 groups not estimable (no patient of this group followed to 60 months); "
                     "numbers at risk at 60 months by group: 3, 0, 0"]

"""Decision-curve analysis against hand-computed net benefits, and the Kaplan-Meier helpers."""

import numpy as np
import pytest

from gistrisk.report.decision_curve import decision_curve, net_benefit
from gistrisk.survival.km import km_at, km_curve, reverse_km_median_follow_up

# six patients: times 1..6, events at 1, 3, 4; censored at 2, 5, 6
T = np.array([1, 2, 3, 4, 5, 6], float)
E = np.array([1, 0, 1, 1, 0, 0])


def test_km_by_hand():
    times, surv = km_curve(T, E)
    # S(1) = 5/6; censoring at 2; S(3) = 5/6 * 3/4; S(4) = 5/6 * 3/4 * 2/3
    assert times.tolist() == [1, 3, 4]
    assert surv == pytest.approx([5 / 6, 5 / 8, 5 / 12])
    assert km_at(T, E, 3.5) == pytest.approx(5 / 8)
    assert km_at(T, E, 0.5) == 1.0
    assert np.isnan(km_at(T, E, 7.0))  # beyond the last follow-up, S > 0: unknown


def test_reverse_km_follow_up_by_hand():
    # censoring as the event: "events" at 2, 5, 6; S_c(2) = 4/5, S_c(5) = 4/5 * 1/2 = 0.4 <= 0.5
    assert reverse_km_median_follow_up(T, E) == 5.0


def test_net_benefit_by_hand():
    # patients 0-3 treated: times 1(e) 2(c) 3(e) 4(e); KM at 3.5 = 3/4 * 1/2 = 3/8; P(treated) = 4/6
    # NB(0.25) = 4/6 * [(1 - 3/8) - 3/8 * (0.25 / 0.75)] = 4/6 * (5/8 - 1/8) = 1/3
    treat = np.array([1, 1, 1, 1, 0, 0], bool)
    assert net_benefit(T, E, treat, 0.25, 3.5) == pytest.approx(1 / 3)
    # treat all: (1 - 5/8) - 5/8 * 1/3 = 1/6
    assert net_benefit(T, E, np.ones(6, bool), 0.25, 3.5) == pytest.approx(1 / 6)
    assert net_benefit(T, E, np.zeros(6, bool), 0.25, 3.5) == 0.0
    with pytest.raises(ValueError):
        net_benefit(T, E, treat, 1.0, 3.5)


def test_decision_curve_model_rule_all_none():
    risk = np.array([0.9, 0.6, 0.8, 0.3, 0.05, 0.2])
    rule = np.array([1, 0, 1, 1, 0, 0], bool)
    df = decision_curve(T, E, 3.5, [0.25, 0.7], risks={"model": risk}, rules={"nih": rule})
    assert list(df.columns) == ["model", "nih", "treat all", "treat none"]
    # at 0.25 the model treats patients 0-3 (as above): 1/3
    assert df.loc[0.25, "model"] == pytest.approx(1 / 3)
    # at 0.7 it treats patients 0 and 2 (both recur by 3.5): KM = 0, NB = 2/6
    assert df.loc[0.7, "model"] == pytest.approx(2 / 6)
    # rule treats 0, 2, 3 (times 1, 3, 4, all events): KM at 3.5 = 2/3 * 1/2 = 1/3, P(treated) = 1/2
    # NB(pt) = 1/2 * [2/3 - 1/3 * pt / (1 - pt)]: 5/18 at 0.25, -1/18 at 0.7
    assert df["nih"].tolist() == pytest.approx([5 / 18, -1 / 18])
    # treat all at 0.7: 3/8 - 5/8 * 7/3
    assert df.loc[0.7, "treat all"] == pytest.approx(3 / 8 - 5 / 8 * 7 / 3)
    assert (df["treat none"] == 0).all()


def test_patients_without_a_prediction_are_not_treated():
    risk = np.array([0.9, np.nan, 0.8, 0.3, 0.05, 0.2])
    df = decision_curve(T, E, 3.5, [0.25], risks={"model": risk})
    # treated 0, 2, 3 (the NaN patient 1 is not): 5/18 as for the rule above
    assert df.loc[0.25, "model"] == pytest.approx(5 / 18)

"""Nomogram scales: points monotone in each score, total points reproduce the fused risk and RFS."""

import numpy as np
import pytest

from gistrisk.report.nomogram import Nomogram, from_fusion
from gistrisk.survival.cox import fit_cox
from gistrisk.survival.fusion import FusionCox


@pytest.fixture(scope="module")
def fusion():
    rng = np.random.default_rng(0)
    S = rng.normal(size=(300, 3)) * [1.0, 0.5, 2.0]
    lp = 0.8 * S[:, 0] - 0.6 * S[:, 1] + 0.3 * S[:, 2]
    t = rng.exponential(30 * np.exp(-lp))
    c = rng.exponential(60, 300)
    time, event = np.minimum(t, c), (t <= c).astype(int)
    f = FusionCox(["clinical", "pathology", "radiomics"], fit_cox(S, time, event), 0.0, 300, int(event.sum()))
    return f, S


def test_points_monotone_and_scaled(fusion):
    f, S = fusion
    nomo = from_fusion(f, S)
    assert nomo.coef[1] < 0 < nomo.coef[0]  # a protective score exercises the reversed axis
    for j in range(3):
        grid = np.tile(np.median(S, axis=0), (50, 1))
        grid[:, j] = np.linspace(nomo.lo[j], nomo.hi[j], 50)
        pts = nomo.points(grid)[:, j]
        d = np.diff(pts)
        assert (d > 0).all() if nomo.coef[j] > 0 else (d < 0).all()
        assert min(pts[0], pts[-1]) == pytest.approx(0.0, abs=1e-9)
    # the widest effect spans exactly 100 points, the others less
    assert nomo.max_points.max() == pytest.approx(100.0)
    assert (nomo.max_points <= 100 + 1e-9).all()


def test_total_points_give_the_fused_risk_and_rfs(fusion):
    f, S = fusion
    nomo = from_fusion(f, S)
    lp = nomo.linear_predictor(nomo.total_points(S[:20]))
    assert lp == pytest.approx(f.risk(S[:20]))
    surv = f.cox.survival(S[:20], [36.0])[:, 0]
    assert nomo.rfs(nomo.total_points(S[:20]), 36.0) == pytest.approx(surv)
    tp = np.linspace(0, nomo.max_points.sum(), 30)
    for month in (12, 36, 60):
        r = nomo.rfs(tp, month)
        assert (np.diff(r) < 0).all()  # more points, lower RFS
        assert nomo.points_for_rfs(r, month) == pytest.approx(tp)
    # later horizons never have higher RFS at the same points
    assert (nomo.rfs(tp, 60) <= nomo.rfs(tp, 12) + 1e-12).all()


def test_needs_scores_for_axes(fusion):
    f, _ = fusion
    with pytest.raises(ValueError, match="at least 2"):
        from_fusion(f, np.full((5, 3), np.nan))
    assert isinstance(from_fusion(f, np.random.default_rng(1).normal(size=(10, 3))), Nomogram)


def test_axes_follow_the_development_scores_in_the_bundle(fitted):
    """The nomogram's axes come from model.json's out-of-fold scores; only a bundle written before
    they travelled in it falls back to the scored cohort, and the report says which."""
    from gistrisk.report.nomogram import axis_scores
    from gistrisk.survival.model import MultimodalRiskModel

    model, pred = fitted["model"], fitted["pred"]
    loaded = MultimodalRiskModel.from_dict(model.to_dict())
    S, source = axis_scores(loaded, pred)
    assert source == "development cohort (out-of-fold scores)"
    np.testing.assert_array_equal(S, model.oof_scores_[model.main_fusion.modalities].to_numpy(float))
    old = MultimodalRiskModel.from_dict({k: v for k, v in model.to_dict().items() if k != "oof_scores"})
    S, source = axis_scores(old, pred)
    assert old.oof_scores_ is None and source == "validation cohort" and len(S) == len(pred)

"""Nomogram of the late-fusion Cox model: points per unimodal score, total points -> risk and RFS.

The score with the widest effect (|coef| x its range) spans 0-100 points; every other score gets
points in proportion to ``coef * (score - ref)``, ``ref`` being the end of its range with the lowest
hazard. Total points map linearly to the fused linear predictor, and through the Breslow baseline
to RFS: ``S(t) = exp(-H0(t) * exp(lp))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from gistrisk.report.render import label, pyplot
from gistrisk.survival.cox import step_at
from gistrisk.survival.fusion import FusionCox

SCORE_NAMES = {"radiomics": "radscore", "pathology": "patscore", "clinical": "clinscore"}
RFS_TICKS = (0.99, 0.97, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.01)


@dataclass
class Nomogram:
    """Point scales of a fusion Cox.

    Attributes
    ----------
    modalities : list of str, length k
    coef, mean : ndarray, shape (k,)       fusion Cox coefficients and centring means
    lo, hi : ndarray, shape (k,)           drawn range of each score
    baseline_time, baseline_cumhaz : ndarray, shape (m,)
    """

    modalities: list[str]
    coef: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    baseline_time: np.ndarray
    baseline_cumhaz: np.ndarray

    @property
    def ref(self) -> np.ndarray:
        """Score giving 0 points, shape (k,)."""
        return np.where(self.coef >= 0, self.lo, self.hi)

    @property
    def span(self) -> float:
        """Largest |coef| x range: the linear-predictor change worth 100 points."""
        s = float(np.max(np.abs(self.coef) * (self.hi - self.lo)))
        return s if s > 0 else 1.0

    @property
    def max_points(self) -> np.ndarray:
        """Points at the high-hazard end of each score, shape (k,)."""
        return 100.0 * np.abs(self.coef) * (self.hi - self.lo) / self.span

    def points(self, scores) -> np.ndarray:
        """Points per score, shape (n, k), from scores of shape (n, k)."""
        S = np.atleast_2d(np.asarray(scores, float))
        return 100.0 * self.coef * (S - self.ref) / self.span

    def total_points(self, scores) -> np.ndarray:
        return self.points(scores).sum(axis=1)

    def linear_predictor(self, total_points) -> np.ndarray:
        """Fused risk (the Cox linear predictor) from total points, same shape as the input."""
        offset = float(np.sum(self.coef * (self.ref - self.mean)))
        return np.asarray(total_points, float) * self.span / 100.0 + offset

    def rfs(self, total_points, month: float) -> np.ndarray:
        H0 = float(step_at(self.baseline_time, self.baseline_cumhaz, np.array([month]))[0])
        return np.exp(-H0 * np.exp(self.linear_predictor(total_points)))

    def points_for_rfs(self, p: np.ndarray, month: float) -> np.ndarray:
        """Total points at which predicted RFS at ``month`` equals ``p`` (inverse of :meth:`rfs`)."""
        H0 = float(step_at(self.baseline_time, self.baseline_cumhaz, np.array([month]))[0])
        if H0 <= 0:
            return np.full(np.shape(p), np.nan)
        lp = np.log(-np.log(np.asarray(p, float)) / H0)
        offset = float(np.sum(self.coef * (self.ref - self.mean)))
        return (lp - offset) * 100.0 / self.span


def from_fusion(fusion: FusionCox, scores: np.ndarray, quantiles=(0.01, 0.99)) -> Nomogram:
    """Nomogram of ``fusion`` whose score axes cover the given quantiles of ``scores`` (n, k)."""
    S = np.asarray(scores, float)
    S = S[np.isfinite(S).all(axis=1)]
    if len(S) < 2:
        raise ValueError("a nomogram needs the scores of at least 2 patients to set its axis ranges")
    lo, hi = np.quantile(S, quantiles[0], axis=0), np.quantile(S, quantiles[1], axis=0)
    c = fusion.cox
    return Nomogram(list(fusion.modalities), np.asarray(c.coef, float), np.asarray(c.mean, float), lo, hi,
                    np.asarray(c.baseline_time, float), np.asarray(c.baseline_cumhaz, float))


def axis_scores(model, predictions: pd.DataFrame) -> tuple[np.ndarray, str]:
    """Scores (n, k) whose spread sets the axes of the main fusion's nomogram, and where they come
    from: the development cohort's out-of-fold scores in the bundle (the scores the fusion Cox was
    fitted on); for a bundle written before they travelled in it, the scored cohort's ``predictions``."""
    f = model.main_fusion
    if model.oof_scores_ is not None:
        return model.oof_scores_[list(f.modalities)].to_numpy(float), "development cohort (out-of-fold scores)"
    return predictions[[f"score_{m}" for m in f.modalities]].to_numpy(float), "validation cohort"


def _nice_ticks(lo: float, hi: float, n: int = 6) -> np.ndarray:
    t = np.asarray(MaxNLocator(nbins=n).tick_values(lo, hi))  # an array (its stubs say a sequence)
    return t[(t >= lo - 1e-9) & (t <= hi + 1e-9)]


def draw(nomo: Nomogram, months=(12, 36, 60)):
    """The nomogram as a matplotlib figure (one horizontal scale per row)."""
    plt = pyplot()
    total_max = float(nomo.max_points.sum())
    rows = 1 + len(nomo.modalities) + 2 + len(months)
    fig, ax = plt.subplots(figsize=(10, 0.62 * rows + 0.6))
    ax.set_xlim(-38, 106)
    ax.set_ylim(-rows + 0.4, 0.9)
    ax.axis("off")

    def scale(y, name, xs, labels, color="black"):
        ax.text(-36, y, name, va="center", ha="left", fontsize=8.5, color=color)
        if len(xs) == 0:
            return
        ax.plot([min(xs), max(xs)], [y, y], color=color, lw=1)
        for x, t in zip(xs, labels):
            ax.plot([x, x], [y, y + 0.12], color=color, lw=1)
            ax.text(x, y + 0.2, t, ha="center", va="bottom", fontsize=7, color=color)

    y = 0.0
    pts = np.arange(0, 101, 10)
    scale(y, "Points", pts, [f"{p:g}" for p in pts])
    for j, m in enumerate(nomo.modalities):
        y -= 1
        ticks = _nice_ticks(nomo.lo[j], nomo.hi[j])
        S = np.tile(nomo.ref, (len(ticks), 1))
        S[:, j] = ticks
        xs = nomo.points(S)[:, j]
        scale(y, f"{label(m)} score ({SCORE_NAMES.get(m, m)})", xs, [f"{t:g}" for t in ticks])
    # total points and everything derived from them share one axis: x = total * 100 / total_max
    k = 100.0 / total_max if total_max > 0 else 1.0
    y -= 1
    tp = _nice_ticks(0, total_max, 10)
    scale(y, "Total points", tp * k, [f"{t:g}" for t in tp], color="#1f4e79")
    y -= 1
    lp_lo, lp_hi = float(nomo.linear_predictor(0.0)), float(nomo.linear_predictor(total_max))
    lps = _nice_ticks(lp_lo, lp_hi, 8)
    scale(y, "Fused risk (linear predictor)", (lps - lp_lo) / (lp_hi - lp_lo) * 100 if lp_hi > lp_lo else [],
          [f"{v:g}" for v in lps], color="#1f4e79")
    for mo in months:
        y -= 1
        p = np.array(RFS_TICKS)
        x = nomo.points_for_rfs(p, mo)
        ok = np.isfinite(x) & (x >= 0) & (x <= total_max)
        xs = x[ok] * k
        # keep labels from colliding: at least 5 axis units apart
        keep, last = [], -np.inf
        for xi, pi in sorted(zip(xs, p[ok])):
            if xi - last >= 5:
                keep.append((xi, pi))
                last = xi
        scale(y, f"RFS at {mo / 12:g} year{'s' if mo != 12 else ''}", [a for a, _ in keep],
              [f"{b:g}" for _, b in keep], color="#8b0000")
    ax.set_title("Nomogram of the late-fusion model: add the points of each score, read risk and RFS "
                 "below the total", fontsize=9)
    return fig

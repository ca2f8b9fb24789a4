"""Late fusion (a Cox on out-of-fold unimodal scores), early fusion and risk cut-offs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gistrisk.survival.cox import CoxResult, fit_cox
from gistrisk.survival.km import logrank_test

PAPER_SCORE_NAMES = {"radiomics": "radscore", "pathology": "patscore", "clinical": "clinscore"}


def score_name(modality: str) -> str:
    """The paper's name of a modality's score (radscore, patscore, clinscore; else <name>score)."""
    return PAPER_SCORE_NAMES.get(modality, f"{modality}score")


@dataclass
class FusionCox:
    """A Cox model on unimodal scores: ``risk = sum_m coef_m * (score_m - mean_m)``.

    Attributes
    ----------
    modalities : list of str     order of the scores
    cox : CoxResult
    cutoff : float               fused-risk threshold between "low" and "high"
    n, events : int              training patients with all these scores
    """

    modalities: list[str]
    cox: CoxResult
    cutoff: float
    n: int
    events: int

    def risk(self, S: np.ndarray) -> np.ndarray:
        """Fused risk, shape (n,), from scores ``S`` of shape (n, len(modalities))."""
        return self.cox.linear_predictor(S)

    def formula(self) -> str:
        """The fusion formula as the paper prints it (coefficient * score - constant ...)."""
        parts = []
        for m, b, mu in zip(self.modalities, self.cox.coef, self.cox.mean):
            parts.append(f"{b:+.4f}*{score_name(m)} {-b * mu:+.4f}")
        return "risk = " + " ".join(parts).lstrip("+")

    def to_dict(self) -> dict[str, Any]:
        r = self.cox
        return {"modalities": self.modalities, "coef": r.coef.tolist(), "se": r.se.tolist(), "mean": r.mean.tolist(),
                "loglik": r.loglik, "baseline_time": r.baseline_time.tolist(),
                "baseline_cumhaz": r.baseline_cumhaz.tolist(), "converged": r.converged, "n_iter": r.n_iter,
                "cutoff": self.cutoff, "n": self.n, "events": self.events, "formula": self.formula()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FusionCox:
        r = CoxResult(np.asarray(d["coef"], float), np.asarray(d["se"], float), np.asarray(d["mean"], float),
                      d["loglik"], np.asarray(d["baseline_time"], float), np.asarray(d["baseline_cumhaz"], float),
                      d["converged"], d["n_iter"])
        return cls(list(d["modalities"]), r, float(d["cutoff"]), int(d["n"]), int(d["events"]))


def fit_fusion(modalities: list[str], S: np.ndarray, time, event, *, penalizer: float = 0.0,
               cutoff: str = "median") -> FusionCox:
    """Fit the fusion Cox on scores ``S`` (n, k) and choose the risk cut-off on its training risk."""
    r = fit_cox(S, time, event, penalizer=penalizer)
    risk = r.linear_predictor(S)
    cut = choose_cutoff(risk, time, event, method=cutoff)
    return FusionCox(list(modalities), r, cut, len(risk), int(np.sum(event)))


def choose_cutoff(risk: np.ndarray, time, event, method: str = "median", min_group: float = 0.1) -> float:
    """Median of the training risk, or the maximally selected log-rank cut-off.

    The maxstat search covers the 10th to 90th percentiles so that each group keeps at least
    ``min_group`` of the patients; its p-value is optimistic and is not reported as a test.
    """
    risk = np.asarray(risk, float)
    if method == "median":
        return float(np.median(risk))
    cands = np.unique(np.quantile(risk, np.linspace(min_group, 1 - min_group, 41)))
    best, best_stat = float(np.median(risk)), -np.inf
    for c in cands:
        hi = risk > c
        if hi.all() or (~hi).all():
            continue
        stat = logrank_test(time, event, hi)[0]
        if stat > best_stat:
            best, best_stat = float(c), stat
    return best

"""Cohort-report figures (matplotlib, Agg): forest, C-index, Kaplan-Meier, td-AUC, calibration, DCA."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.ticker import FixedLocator, NullLocator

from gistrisk.report.render import COLORS, label, ordered, p_is, pyplot


def _group_sort(groups) -> list[str]:
    nih = ["very low", "low", "intermediate", "high"]
    groups = list(groups)
    if set(groups) <= set(nih) and not set(groups) <= {"low", "high"}:
        return [g for g in nih if g in groups]
    return [g for g in ("low", "high") if g in groups] + sorted(g for g in groups if g not in ("low", "high"))


def forest_plot(hrs: dict[str, pd.DataFrame]):
    """Hazard ratio (per SD) with 95% CI of every selected feature, grouped by modality (log axis).

    The Wald CIs are in-sample after selection: the axis and title say they are descriptive. A
    penalised (Coxnet) coefficient has no CI and is drawn as a point."""
    plt = pyplot()
    rows: list[tuple[str, pd.Series | None, str]] = []  # (label, feature row or None for a header, modality)
    for m in ordered(hrs):
        rows.append((label(m), None, m))
        for _, r in hrs[m].iterrows():
            name = str(r.get("label", r["feature"]))
            rows.append(("  " + (name if len(name) <= 48 else name[:45] + "..."), r, m))
    fig, ax = plt.subplots(figsize=(8.5, 0.32 * len(rows) + 1.0))
    y = np.arange(len(rows))[::-1]
    for yi, (_txt, r, m) in zip(y, rows):
        if r is None:
            continue
        ci = np.isfinite([r["hr_low"], r["hr_high"]]).all()
        ax.errorbar(r["hr"], yi, xerr=[[r["hr"] - r["hr_low"]], [r["hr_high"] - r["hr"]]] if ci else None, fmt="s",
                    color=COLORS.get(m, "k"), ms=5, capsize=2)
    ax.axvline(1.0, color="grey", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_yticks(y)
    ax.set_yticklabels([t for t, _, _ in rows])
    for tick, (_, r, _) in zip(ax.get_yticklabels(), rows):
        if r is None:
            tick.set_fontweight("bold")
    ends = np.array([[r["hr"], r["hr_low"], r["hr_high"]] for _, r, _ in rows if r is not None], float)
    ends = ends[np.isfinite(ends) & (ends > 0)]
    _log_ticks(ax, float(ends.min()) if len(ends) else 1.0, float(ends.max()) if len(ends) else 1.0)
    ax.set_xlabel("Hazard ratio per 1 SD (Wald 95% CI, descriptive), log scale")
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_title("Selected features of each unimodal Cox model (post-selection, in-sample)")
    return fig


def _log_ticks(ax, lo: float, hi: float) -> None:
    """Plain-number ticks (0.25, 0.5, 1, 2, ...) on a log axis covering [lo, hi]."""
    cand = np.array([0.05, 0.1, 0.2, 0.25, 0.5, 0.67, 0.8, 1, 1.25, 1.5, 2, 3, 4, 5, 10, 20])
    lo, hi = min(lo, 0.9), max(hi, 1.1)
    ticks = cand[(cand >= lo / 1.05) & (cand <= hi * 1.05)]
    ax.set_xlim(lo / 1.1, hi * 1.1)
    ax.xaxis.set_major_locator(FixedLocator(ticks.tolist()))  # its stubs take a sequence, not an array
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{t:g}" for t in ticks])


def cindex_plot(dev: dict[str, Any], val: dict[str, Any], val_name: str = "validation"):
    """C-index with 95% CI per model: development (cross-validated) beside the validation cohort."""
    plt = pyplot()
    models = [m for m in ordered(set(dev) | set(val))
              if any(isinstance(src.get(m), dict) and "c_index" in src[m] for src in (dev, val))]
    fig, ax = plt.subplots(figsize=(7.5, 0.5 * len(models) + 1.2))
    y = np.arange(len(models))[::-1]
    for off, src, _name, marker in ((0.15, dev, "development (cross-validated)", "o"),
                                   (-0.15, val, val_name, "D")):
        for yi, m in zip(y, models):
            r = src.get(m)
            if not isinstance(r, dict) or "c_index" not in r:
                continue
            c, (lo, hi) = r["c_index"], r.get("c_index_ci", [np.nan, np.nan])
            err = [[c - lo], [hi - c]] if np.isfinite(lo) and np.isfinite(hi) else None
            ax.errorbar(c, yi + off, xerr=err, fmt=marker, color=COLORS.get(m, "k"), ms=6, capsize=3,
                        mfc="white" if marker == "o" else COLORS.get(m, "k"))
            right = hi if np.isfinite(hi) else c
            ax.annotate(f"{c:.3f}", (right, yi + off), textcoords="offset points", xytext=(4, 0), ha="left",
                        va="center", fontsize=7)
    ax.plot([], [], "ko", mfc="white", label="development (cross-validated)")
    ax.plot([], [], "kD", label=val_name)
    ax.axvline(0.5, color="grey", ls="--", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels([label(m) for m in models])
    ax.set_xlim(0.3, 1.0)
    ax.set_xlabel("Harrell's C-index (95% bootstrap CI)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=8, frameon=False)
    return fig


def km_figure(metrics: dict[str, Any], models: list[str], ncols: int = 3):
    """Kaplan-Meier RFS by risk group per model, with log-rank p and numbers at risk below each plot."""
    plt = pyplot()
    models = [m for m in models if isinstance(metrics.get(m), dict) and metrics[m].get("km")]
    ncols = max(1, min(ncols, len(models)))
    nrows = math.ceil(len(models) / ncols) if models else 1
    fig = plt.figure(figsize=(4.6 * ncols, 4.6 * nrows))
    outer = fig.add_gridspec(nrows, ncols, hspace=0.4, wspace=0.3)
    for i, m in enumerate(models):
        r = metrics[m]
        inner = outer[i // ncols, i % ncols].subgridspec(2, 1, height_ratios=[3.2, 1.1], hspace=0.62)
        ax, ax_r = fig.add_subplot(inner[0]), fig.add_subplot(inner[1])
        groups = _group_sort(r["km"])
        tmax = max((max(c["time"]) for c in r["km"].values() if c["time"]), default=60.0)
        at = r.get("at_risk") or {}
        ticks = [t for t in at.get("times", [0, 12, 24, 36, 48, 60])]
        # numbers at risk are known at ``ticks`` only: show the curves up to the last of them
        xmax = (ticks[-1] if ticks else tmax) * 1.03
        for g in groups:
            c = r["km"][g]
            ax.step(c["time"], c["survival"], where="post", color=COLORS.get(g, None), lw=1.6,
                    label=f"{g} (n={c['n']}, events={c['events']})")
        ax.set_ylim(0, 1.03)
        ax.set_xlim(0, xmax)
        ax.set_xticks(ticks)
        ax.set_ylabel("RFS probability")
        ax.set_xlabel("Months after surgery", fontsize=8)
        ax.set_title(f"{label(m)} — log-rank {p_is(r.get('logrank_p'))}", fontsize=9)
        ax.legend(fontsize=7, loc="lower left", frameon=False)
        ax_r.set_xlim(ax.get_xlim())
        ax_r.set_ylim(-0.5, len(groups) - 0.5)
        for j, g in enumerate(groups):
            for t, k in zip(ticks, at.get(g, [])):
                ax_r.text(t, len(groups) - 1 - j, str(k), ha="center", va="center", fontsize=7, color=COLORS.get(g, "k"))
        ax_r.set_yticks(range(len(groups)))
        ax_r.set_yticklabels(groups[::-1], fontsize=7)
        ax_r.set_xticks([])
        ax_r.set_title("Number at risk", fontsize=7, loc="left")
        for side in ("left", "bottom"):
            ax_r.spines[side].set_visible(False)
        ax_r.tick_params(length=0, pad=14)
    return fig


def td_auc_plot(metrics: dict[str, Any], models: list[str]):
    """Cumulative/dynamic AUC over time, one line per model."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for m in models:
        d = (metrics.get(m) or {}).get("td_auc") if isinstance(metrics.get(m), dict) else None
        if not d or not d.get("times"):
            continue
        ax.plot(d["times"], d["auc"], marker="o", ms=3, color=COLORS.get(m), lw=2.2 if m == "fusion" else 1.3,
                label=f"{label(m)} (mean {d['mean_auc']:.3f})")
    ax.axhline(0.5, color="grey", ls="--", lw=0.8)
    lows = [min(metrics[m]["td_auc"]["auc"]) for m in models if (metrics[m].get("td_auc") or {}).get("auc")]
    ax.set_ylim(min([0.3, *[v - 0.05 for v in lows]]), 1.0)
    ax.set_xlabel("Months after surgery")
    ax.set_ylabel("Time-dependent AUC")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def estimable(g: dict[str, Any]) -> bool:
    """Whether a calibration group has an observed RFS (some patient still at risk at the horizon)."""
    obs = g.get("observed")
    return g.get("estimable", True) is not False and obs is not None and bool(np.isfinite(float(obs)))


def _num(v) -> float:
    return float("nan") if v is None else float(v)


def calibration_plot(cal: dict[str, Any]):
    """Predicted vs Kaplan-Meier observed RFS at each horizon, by quantile group of prediction.

    A group with no patient still at risk at the horizon has no observed value (``estimable`` False):
    it is left out of the panel, whose title counts such groups."""
    plt = pyplot()
    keys = sorted(cal, key=float)
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(4.2 * max(1, len(keys)), 4), squeeze=False)
    for ax, k in zip(axes[0], keys):
        groups = cal[k].get("groups") or []
        g = [r for r in groups if estimable(r)]
        pred = np.array([_num(r["predicted"]) for r in g], float)
        obs = np.array([_num(r["observed"]) for r in g], float)
        lo = np.array([_num((r.get("observed_ci") or [None, None])[0]) for r in g], float)
        hi = np.array([_num((r.get("observed_ci") or [None, None])[1]) for r in g], float)
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8, label="ideal")
        if g:
            ax.errorbar(pred, obs, yerr=[np.clip(obs - lo, 0, None), np.clip(hi - obs, 0, None)], fmt="o-",
                        color=COLORS["fusion"], capsize=3, label="late fusion")
        for p, o, r in zip(pred, obs, g):
            ax.annotate(f"n={r['n']}", (p, o), textcoords="offset points", xytext=(5, -10), fontsize=7)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_aspect("equal")
        ax.set_xlabel(f"Predicted RFS at {float(k) / 12:g} years")
        ax.set_ylabel(f"Observed RFS at {float(k) / 12:g} years (KM, 95% CI)")
        missing = len(groups) - len(g)
        title = f"{float(k):g} months"
        if missing:
            title += f" — {missing} group{'s' if missing > 1 else ''} not estimable"
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, frameon=False, loc="upper left")
    return fig


DCA_STYLE = {"treat all": dict(color="#888888", ls="-", lw=1.0), "treat none": dict(color="black", ls="-", lw=0.8)}


def dca_plot(curves: dict[str, pd.DataFrame]):
    """Net benefit against threshold probability, one panel per horizon (keys: months as text)."""
    plt = pyplot()
    keys = sorted(curves, key=float)
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(5.2 * max(1, len(keys)), 4), squeeze=False)
    palette = ["#222222", "#a6761d", "#e6ab02", "#1b9e77"]
    for ax, k in zip(axes[0], keys):
        df = curves[k]
        x = df.index.to_numpy(float) * 100
        others = [c for c in df.columns if c not in DCA_STYLE]
        for c, col in zip(others, palette):
            ax.plot(x, df[c], color=col, lw=2 if c.startswith("Late") else 1.4,
                    ls="-" if c.startswith("Late") else "--", label=c)
        for c, st in DCA_STYLE.items():
            ax.plot(x, df[c], label=c, **st)
        top = np.nanmax(df.to_numpy(float)) if np.isfinite(df.to_numpy(float)).any() else 0.1
        ax.set_ylim(-0.05 - 0.1 * top, top * 1.15 + 0.02)
        ax.set_xlim(x.min(), x.max())
        ax.set_xlabel("Threshold probability of recurrence for adjuvant TKI, %")
        ax.set_ylabel("Net benefit")
        ax.set_title(f"Recurrence by {float(k) / 12:g} years")
        ax.legend(fontsize=7, frameon=False)
    return fig

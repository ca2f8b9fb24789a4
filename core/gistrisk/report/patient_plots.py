"""Per-patient figures: predicted RFS curve against the training risk groups, modality contributions."""

from __future__ import annotations

import numpy as np

from gistrisk.report.render import COLORS, label, pyplot


def rfs_curve_plot(times, survival, group_curves: dict, patient_id: str, group: str):
    """The patient's predicted RFS (solid) over the development cohort's low/high-risk KM curves (dashed)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.4))
    for g in ("low", "high"):
        c = group_curves.get(g)
        if isinstance(c, dict) and c.get("time"):
            ax.step(c["time"], c["survival"], where="post", ls="--", lw=1.2, color=COLORS[g], alpha=0.8,
                    label=f"development {g}-risk group (KM, n={c.get('n', '?')})")
    ax.plot(np.asarray(times, float), np.asarray(survival, float), color=COLORS.get(group, "black"), lw=2.5,
            label=f"patient {patient_id} (predicted, {group or 'no'} risk)")
    for t in (12, 36, 60):
        s = np.interp(t, np.asarray(times, float), np.asarray(survival, float)) if len(times) else np.nan
        if np.isfinite(s):
            ax.plot([t], [s], "o", color=COLORS.get(group, "black"), ms=5)
            ax.annotate(f"{100 * s:.0f}%", (t, s), textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax.set_ylim(0, 1.03)
    ax.set_xlim(0, max(float(np.max(times)) if len(times) else 60.0, 60.0))
    ax.set_xticks(np.arange(0, ax.get_xlim()[1] + 1, 12))
    ax.set_xlabel("Months after surgery")
    ax.set_ylabel("Recurrence-free survival")
    ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    return fig


def contribution_plot(contrib: dict[str, float]):
    """Horizontal bars: each modality's coef * (score - training mean); right of 0 raises the risk."""
    plt = pyplot()
    mods = list(contrib)
    vals = np.array([contrib[m] for m in mods], float)
    fig, ax = plt.subplots(figsize=(6.5, 0.55 * len(mods) + 1.2))
    y = np.arange(len(mods))[::-1]
    ax.barh(y, vals, color=[COLORS["high"] if v > 0 else COLORS["low"] for v in vals], height=0.55)
    for yi, v in zip(y, vals):
        ax.text(v, yi, f" {v:+.2f} ", va="center", ha="left" if v >= 0 else "right", fontsize=8)
    ax.axvline(0, color="black", lw=0.8)
    lim = max(0.5, float(np.abs(vals).max()) * 1.35) if len(vals) else 1.0
    ax.set_xlim(-lim, lim)
    ax.set_yticks(y)
    ax.set_yticklabels([label(m) for m in mods])
    ax.set_xlabel("Contribution to the fused log-hazard (vs. an average development patient)")
    return fig

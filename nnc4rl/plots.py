"""The paper's figures from the tidy tables of :mod:`nnc4rl.results` and the training plan.

Colours follow the paper: blue pruned, red pruned + quantized, purple dotted quantized only,
green dashed dense; shaded bands are 95 % bootstrap intervals over seeds.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from nnc4rl.plan import TrainingPlan
from nnc4rl.store import repo_root

STYLE = {
    "pruned": {"color": "tab:blue", "linestyle": "-", "marker": "o"},
    "pruned + quantized": {"color": "tab:red", "linestyle": "-", "marker": "s"},
    "quantized only": {"color": "tab:purple", "linestyle": ":"},
    "dense": {"color": "tab:green", "linestyle": "--"},
}
PHASE_COLORS = {"dense": "#d9ead3", "pruning": "#cfe2f3", "finetune": "#fff2cc", "qat": "#f4cccc"}


def _grid(n: int, width: float = 4.2, height: float = 3.2):
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _wrap(fig: plt.Figure, title: str) -> str:
    """``title`` wrapped to the figure's width (about 11 characters per inch)."""
    return textwrap.fill(title, width=int(fig.get_figwidth() * 11))


def _suptitle(fig: plt.Figure, title: str) -> None:
    fig.suptitle(_wrap(fig, title), fontsize=10)
    fig.tight_layout()


def sparsity_returns(summary: pd.DataFrame, title: str) -> plt.Figure:
    """Figures 4-6: return against sparsity, one panel per env (``summary`` of one figure).

    Sparsities are placed evenly (categorical axis) so 0.95 / 0.98 / 0.99 stay readable; the
    dense and quantized-only values are horizontal lines across the panel.
    """
    envs = list(dict.fromkeys(summary["env"]))
    fig, axes = _grid(len(envs))
    for ax, env in zip(axes, envs, strict=True):
        sub = summary[summary["env"] == env]
        pruned_s = sorted(s for s in sub["sparsity"].unique() if s > 0)
        x = np.arange(len(pruned_s))
        for name in ("pruned", "pruned + quantized"):
            d = sub[sub["variant"] == name].set_index("sparsity").reindex(pruned_s)
            ax.plot(x, d["mean"], label=name, **STYLE[name])
            ax.fill_between(x, d["ci_low"], d["ci_high"], color=STYLE[name]["color"], alpha=0.2)
        for name in ("dense", "quantized only"):
            d = sub[sub["variant"] == name]
            if d.empty:
                continue
            r = d.iloc[0]
            ax.axhline(r["mean"], label=name, **STYLE[name])
            ax.axhspan(r["ci_low"], r["ci_high"], color=STYLE[name]["color"], alpha=0.1)
        ax.set_xticks(x, [f"{s:g}" for s in pruned_s])
        ax.set_xlabel("sparsity")
        ax.set_ylabel("return")
        ax.set_title(env.replace("NoFrameskip-v4", ""))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    _suptitle(fig, title)
    return fig


def learning_curves(curves: pd.DataFrame, title: str) -> plt.Figure:
    """Companion figure: mean evaluation return over seeds against env steps, one line per
    sparsity, one panel per env; dotted lines mark 0.2 T, 0.8 T and T."""
    envs = list(dict.fromkeys(curves["env"]))
    fig, axes = _grid(len(envs))
    cmap = plt.get_cmap("viridis")
    sparsities = sorted(curves["sparsity"].unique())
    for ax, env in zip(axes, envs, strict=True):
        sub = curves[curves["env"] == env]
        for i, s in enumerate(sparsities):
            d = sub[sub["sparsity"] == s].groupby("step")["return_mean"].mean()
            if not d.empty:
                color = cmap(i / max(1, len(sparsities) - 1))
                ax.plot(d.index, d.to_numpy(), color=color, label=f"{s:g}")
        T = int(sub["T"].iloc[0])
        for frac in (0.2, 0.8, 1.0):
            ax.axvline(frac * T, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("env steps")
        ax.set_ylabel("return")
        ax.set_title(env.replace("NoFrameskip-v4", ""))
        ax.grid(alpha=0.3)
    axes[0].legend(title="sparsity", fontsize=7)
    _suptitle(fig, title)
    return fig


def sparsity_schedule(plans: list[TrainingPlan], title: str) -> plt.Figure:
    """Figure 2: target sparsity against env steps (``plan.sparsity_at``) for each plan."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for plan in plans:
        steps = np.unique(np.concatenate([np.linspace(0, plan.total_steps, 400).astype(int),
                                          np.asarray(plan.event_steps())]))  # fmt: skip
        ax.step(steps, [plan.sparsity_at(int(t)) for t in steps], where="post",
                label=f"$s_f$ = {plan.final_sparsity:g}")  # fmt: skip
    T = plans[0].total_timesteps
    for t, name in ((plans[0].pruning_start, "0.2 T"), (plans[0].pruning_end, "0.8 T"), (T, "T")):
        ax.axvline(t, color="grey", linestyle=":", linewidth=1)
        ax.text(t, 1.01, name, transform=ax.get_xaxis_transform(), ha="center", fontsize=8)
    ax.set_xlabel("env steps")
    ax.set_ylabel("target sparsity")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title(_wrap(fig, title), fontsize=10, pad=14)
    fig.tight_layout()
    return fig


def training_scheme(plan: TrainingPlan, title: str) -> plt.Figure:
    """Figure 3: the phases of one run (``plan.phase_at``) with its sparsity and the two
    evaluation points (T: fp32, 1.2 T: quantized)."""
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    steps = np.arange(0, plan.total_steps + 1, max(1, plan.total_steps // 600))
    phases = [plan.phase_at(int(t)).value for t in steps[:-1]]
    start = 0
    for i in range(1, len(phases) + 1):
        if i == len(phases) or phases[i] != phases[start]:
            ax.axvspan(steps[start], steps[i], color=PHASE_COLORS[phases[start]])
            ax.text((steps[start] + steps[i]) / 2, 0.93, phases[start], ha="center", fontsize=9)
            start = i
    ax.plot(steps, [plan.sparsity_at(int(t)) for t in steps], color="tab:blue",
            label="target sparsity")  # fmt: skip
    for t, name in ((plan.qat_start, "eval: fp32"), (plan.total_steps, "eval: int8")):
        ax.plot([t], [plan.final_sparsity], marker="v", color="black")
        ax.annotate(name, (t, plan.final_sparsity), textcoords="offset points", xytext=(0, -14),
                    ha="right", fontsize=8)  # fmt: skip
    ax.set_xlim(0, plan.total_steps)
    ax.set_ylim(0, 1)
    ax.set_xlabel("env steps")
    ax.set_ylabel("sparsity")
    ax.set_title(_wrap(fig, title), fontsize=10)
    fig.tight_layout()
    return fig


def save(fig: plt.Figure, profile: str, name: str, root: str | Path | None = None) -> list[Path]:
    """Save ``fig`` as ``figures/<profile>/<name>.png`` and ``.pdf``; returns the paths."""
    folder = Path(root or repo_root() / "figures") / profile
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=130)
    fig.savefig(paths[1])
    return paths

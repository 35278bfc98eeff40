"""The paper's figures from the tidy tables of :mod:`nnc4rl.study.results` and the training plan.

Colours follow the paper: blue pruned, red pruned + quantized, purple dotted quantized only,
green dashed dense; the controls (equal-length fine-tuning, PTQ, 4-bit QAT) get their own. Every
seed is drawn as a point; a line is the mean over seeds and its bars / band the Student-t 95 %
interval of the mean (none with one seed: the seeds alone are drawn). Phases come from
:class:`nnc4rl.compress.plan.TrainingPlan`. The aggregate figure uses the estimators of Agarwal et al.
(NeurIPS 2021) from :mod:`nnc4rl.study.stats`.
"""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import EngFormatter

from nnc4rl.compress.plan import TrainingPlan
from nnc4rl.runs.store import repo_root
from nnc4rl.study import stats
from nnc4rl.study.readings import MIN_SEEDS, count, per_seed
from nnc4rl.study.results import _main_run_rows

STYLE = {
    "pruned": {"color": "tab:blue", "linestyle": "-", "marker": "o"},
    "pruned + quantized": {"color": "tab:red", "linestyle": "-", "marker": "s"},
    "quantized only": {"color": "tab:purple", "linestyle": ":"},
    "dense": {"color": "tab:green", "linestyle": "--"},
    # the equal-length reference of every 1.2 T point
    "dense, 1.2 T": {"color": "tab:olive", "linestyle": "-."},
    # controls beyond the paper: one series per method, its sparsity-0 point included
    "pruned, 1.2 T": {"color": "tab:cyan", "linestyle": "--", "marker": "^"},
    "QAT int4": {"color": "darkred", "linestyle": "-.", "marker": "D"},
    "PTQ int8": {"color": "tab:orange", "linestyle": ":", "marker": "x"},
    "PTQ int4": {"color": "tab:brown", "linestyle": ":", "marker": "x"},
}
# The tables' names of the control points, and the series of the control panels they belong to.
SERIES = {
    "pruned + quantized (int4)": "QAT int4",
    "quantized only (int4)": "QAT int4",
    "pruned + PTQ int8": "PTQ int8",
    "dense + PTQ int8": "PTQ int8",
    "pruned + PTQ int4": "PTQ int4",
    "dense + PTQ int4": "PTQ int4",
}
# The paper's figure; then the controls; PTQ int4 (returns far below the rest) on its own scale.
PANELS = (
    ("the paper's variants", ("pruned", "pruned + quantized", "quantized only", "dense", "dense, 1.2 T")),
    ("controls: trained as long, 4-bit QAT, PTQ int8", ("pruned + quantized", "pruned, 1.2 T",
     "QAT int4", "PTQ int8", "dense, 1.2 T")),
    ("control: PTQ int4 (own scale)", ("PTQ int4", "dense")),
)  # fmt: skip
OTHER = {"color": "tab:gray", "linestyle": "-", "marker": "."}
PHASE_COLORS = {"dense": "#d9ead3", "pruning": "#cfe2f3", "finetune": "#fff2cc", "qat": "#f4cccc"}
PHASE_NAMES = {"dense": "dense", "pruning": "pruning", "finetune": "fine-tuning", "qat": "QAT"}


NO_RUNS = "no finished runs yet"


def _t_errorbar(values) -> tuple[float, float]:
    """seaborn ``errorbar`` callable: the Student-t 95 % interval (NaN, i.e. none, at n = 1)."""
    return stats.t_interval(values)


def caption(profile: str, runs: pd.DataFrame, label: str = "") -> str:
    """``"<profile> profile: T = ..., N seeds[; label]"`` from the runs themselves (the seeds
    actually finished, not the ones planned): ``"2-5 seeds per setting"`` while a study is
    still filling in.

    :param label: the group label (e.g. "pipeline check: untrained agents"), appended if given.
    """
    if runs.empty:
        text = f"{profile} profile: {NO_RUNS}"
    else:
        Ts = sorted(int(t) for t in runs["T"].unique())
        keys = ["group", "env", "arch", "sparsity"]
        per = runs.groupby([k for k in keys if k in runs.columns])["seed"].nunique()
        lo, hi = int(per.min()), int(per.max())
        seeds = count(hi, "seed") if lo == hi else f"{lo}-{hi} seeds per setting"
        text = f"{profile} profile: T = {', '.join(f'{t:,}' for t in Ts)}, {seeds}"
    return text + (f"; {label}" if label else "")


def _steps_axis(ax: plt.Axes) -> None:
    """x axis in env steps with short tick labels (20k, 1M) that do not run into each other."""
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set_xlabel("env steps")


def _grid(n: int, width: float = 4.2, height: float = 3.2):
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _wrap(fig: plt.Figure, title: str) -> str:
    """``title`` wrapped to the figure's width (about 11 characters per inch), never between
    ``T``, ``=`` and its number."""
    title = re.sub(r"\b(T|s_f) = ", "\\1\u00a0=\u00a0", title)
    return textwrap.fill(title, width=int(fig.get_figwidth() * 11))


def _say_empty(ax: plt.Axes) -> None:
    """A panel with nothing to draw says so, rather than showing bare axes."""
    ax.text(0.5, 0.5, NO_RUNS, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _suptitle(fig: plt.Figure, title: str) -> None:
    for ax in fig.axes:
        if ax.get_visible() and not (ax.lines or ax.collections or ax.patches or ax.texts):
            _say_empty(ax)
    fig.suptitle(_wrap(fig, title), fontsize=10)
    fig.tight_layout()


def _order(variants) -> list[str]:
    """The variants present, in :data:`STYLE`'s order of their series (unknown ones last)."""
    rank = {name: i for i, name in enumerate(STYLE)}
    present = list(dict.fromkeys(variants))
    return sorted(present, key=lambda v: (rank.get(SERIES.get(v, v), len(rank)), v))


def _short(env: str) -> str:
    return env.replace("NoFrameskip-v4", "")


def _panel_legend(ax: plt.Axes) -> None:
    """The panel's legend below it, two columns: it never covers data or squeezes the panel."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize=7, ncol=2, loc="upper center",
                  bbox_to_anchor=(0.5, -0.2), frameon=False)  # fmt: skip


def sparsity_returns(runs: pd.DataFrame, title: str) -> plt.Figure:
    """Figures 4-6: return against sparsity, one row per env and network: the paper's variants
    (with the equal-length dense reference), then, where the profile has them, the controls and
    PTQ int4 (on its own scale, so its low returns do not flatten the rest).

    Every seed is a point; a line with bars is the mean and its Student-t 95 % interval.
    Sparsities are placed evenly (0.95 / 0.98 / 0.99 stay readable); a variant only at sparsity
    0 (dense, quantized only, dense 1.2 T) is a horizontal line with its interval as a band, its
    seeds drawn at 0. Every series keeps its :data:`STYLE` in every panel and figure.

    :param runs: :func:`nnc4rl.study.results.load_runs` rows of one figure.
    """
    df = _main_run_rows(runs)
    df = df.assign(series=df["variant"].map(lambda v: SERIES.get(v, v)))
    rows = list(df.groupby(["env", "arch"], sort=True))
    present = set(df["series"])
    panels = [
        p for k, p in enumerate(PANELS) if k == 0 or present & (set(p[1]) - set(PANELS[0][1]))
    ]
    with sns.axes_style("whitegrid"):
        fig, grid = plt.subplots(max(1, len(rows)), len(panels), squeeze=False,
                                 figsize=(4.8 * len(panels), 4.4 * max(1, len(rows))))  # fmt: skip
    for axes, ((env, arch), sub) in zip(grid, rows, strict=False):
        levels = sorted(sub["sparsity"].unique())
        pos = {s: i for i, s in enumerate(levels)}
        for ax, (name, series) in zip(axes, panels, strict=True):
            names = [n for n in series if n in set(sub["series"])]
            for i, n in enumerate(names):
                d = sub[sub["series"] == n]
                d = d.assign(x=d["sparsity"].map(pos))
                style = STYLE.get(n, OTHER)
                dodge = (i - (len(names) - 1) / 2) * 0.06
                sns.scatterplot(x=d["x"] + dodge, y=d["return_mean"], ax=ax, color=style["color"],
                                marker=style.get("marker", "o"), s=14, alpha=0.55, linewidth=0,
                                legend=False)  # fmt: skip
                if (d["sparsity"] == 0).all():
                    y = d["return_mean"].to_numpy()
                    ax.axhline(
                        y.mean(), color=style["color"], linestyle=style["linestyle"], label=n
                    )
                    lo, hi = stats.t_interval(y)
                    if np.isfinite(lo):
                        ax.axhspan(lo, hi, color=style["color"], alpha=0.08)
                else:
                    sns.lineplot(data=d.assign(x=d["x"] + dodge), x="x", y="return_mean", ax=ax,
                                 errorbar=_t_errorbar, err_style="bars", color=style["color"],
                                 linestyle=style["linestyle"], marker=style.get("marker", "o"),
                                 label=n, err_kws={"capsize": 2})  # fmt: skip
            ax.set_xticks(range(len(levels)), [f"{s:g}" for s in levels])
            ax.set_xlabel("sparsity")
            ax.set_ylabel("return")
            ax.set_title(f"{_short(env)} ({arch}): {name}", fontsize=9)
            _panel_legend(ax)
    _suptitle(fig, title)
    return fig


def _run_kind(quantized: bool, bits: int, extra_finetune: bool) -> str:
    if extra_finetune:
        return "no QAT: fine-tuned to 1.2 T"
    if quantized:
        return f"QAT int{bits} from T"
    return "no QAT"


def _shade_phases(ax: plt.Axes, plan: TrainingPlan) -> None:
    """Shade and label the phases of ``plan`` (boundaries from the plan, never re-typed)."""
    T = plan.qat_start
    if plan.prunes:
        spans = [("dense", 0, plan.pruning_start), ("pruning", plan.pruning_start,
                 plan.pruning_end), ("finetune", plan.pruning_end, T)]  # fmt: skip
    else:
        spans = [("dense", 0, T)]
    if plan.total_steps > T:
        spans.append(("qat", T, plan.total_steps))
    for phase, a, b in spans:
        ax.axvspan(a, b, color=PHASE_COLORS[phase], alpha=0.6, linewidth=0, zorder=0)
        ax.text((a + b) / 2, 0.98, PHASE_NAMES[phase], transform=ax.get_xaxis_transform(),
                ha="center", va="top", fontsize=6.5, color="0.3")  # fmt: skip


def learning_curves(curves: pd.DataFrame, title: str) -> plt.Figure:
    """Companion figure: evaluation return against env steps, one panel per env, network and
    sparsity; a line per kind of run (QAT int8, QAT int4, the equal-length control) with the
    mean over seeds and its Student-t 95 % band, thin lines for the single seeds, and the phases
    of the run's :class:`~nnc4rl.compress.plan.TrainingPlan` shaded and labelled.

    :param curves: :func:`nnc4rl.study.results.load_curves` rows of one figure.
    """
    df = curves
    if "current" in df.columns:
        df = df[df["current"].astype(bool)]
    extra = df["extra_finetune"] if "extra_finetune" in df.columns else False
    df = df.assign(kind=[_run_kind(q, b, e) for q, b, e in zip(
        df["quantized"], df["bits"], np.broadcast_to(extra, len(df)), strict=True)])  # fmt: skip
    panels = list(df.groupby(["env", "arch", "sparsity"], sort=True))
    series = {"QAT int8 from T": ("quantized only", "pruned + quantized"), "QAT int4 from T":
              ("QAT int4", "QAT int4"), "no QAT: fine-tuned to 1.2 T": ("dense, 1.2 T",
              "pruned, 1.2 T"), "no QAT": ("dense", "pruned")}  # fmt: skip
    with sns.axes_style("ticks"):
        fig, axes = _grid(max(1, len(panels)), width=4.2, height=3.0)
    for ax, ((env, arch, s), sub) in zip(axes, panels, strict=False):
        T = int(sub["T"].iloc[0])
        _shade_phases(ax, TrainingPlan(T, final_sparsity=float(s), quantize=True))
        for kind, k in sub.groupby("kind", sort=True):
            color = STYLE.get(series.get(kind, ("", ""))[s > 0], OTHER)["color"]
            for _, seed_curve in k.groupby("run_id"):
                ax.plot(seed_curve["step"], seed_curve["return_mean"], color=color,
                        alpha=0.25, linewidth=0.7)  # fmt: skip
            sns.lineplot(data=k, x="step", y="return_mean", ax=ax, errorbar=_t_errorbar,
                         color=color, label=f"{kind} ({count(k['seed'].nunique(), 'seed')})")  # fmt: skip
        _steps_axis(ax)
        ax.set_ylabel("return")
        ax.set_title(f"{_short(env)} ({arch}), sparsity {s:g}", fontsize=9)
        ax.legend(fontsize=6.5, loc="lower right")
    _suptitle(fig, title)
    return fig


def pilot_curves(curves: pd.DataFrame, title: str, study_T: int | None = None) -> plt.Figure:
    """The pilot that chooses a study's ``T``: left, the dense learning curves (thin: each seed;
    thick: the seed mean with its Student-t 95 % band) with the first plateau and the study's
    ``T`` marked; right, the late gain of :mod:`nnc4rl.study.pilot` per candidate ``T`` against
    its tolerance.

    :param curves: :func:`nnc4rl.study.results.load_curves` rows of one env's pilot runs.
    """
    from nnc4rl.study import pilot

    with sns.axes_style("ticks"):
        fig, (left, right) = plt.subplots(1, 2, figsize=(10.0, 3.6))
    if not curves.empty:
        style = STYLE["dense"] | {"linestyle": "-"}
        for _, seed_curve in curves.groupby("seed"):
            left.plot(seed_curve["step"], seed_curve["return_mean"], color=style["color"],
                      alpha=0.3, linewidth=0.7)  # fmt: skip
        sns.lineplot(data=curves, x="step", y="return_mean", ax=left, errorbar=_t_errorbar,
                     color=style["color"], label=f"dense fp32 ({count(curves['seed'].nunique(), 'seed')})")  # fmt: skip
        table = pilot.plateau_table(curves, pilot.candidate_step(curves))
        plateau = pilot.first_plateau(table)
        marks = [(plateau, "first plateau", "0.3"), (study_T, "study T", "tab:red")]
        for x, name, color in marks:
            if x is not None:
                left.axvline(x, color=color, linestyle="--", linewidth=1, label=f"{name}: {x:,}")
        right.plot(table["T"], 100 * table["late_gain"], marker="o", color=style["color"])
        right.axhline(100 * pilot.PLATEAU_TOLERANCE, color="0.3", linestyle=":",
                      label=f"tolerance {100 * pilot.PLATEAU_TOLERANCE:.0f} %")  # fmt: skip
        if study_T is not None:
            right.axvline(study_T, color="tab:red", linestyle="--", linewidth=1)
        right.legend(fontsize=7)
        left.legend(fontsize=7, loc="lower right")
    for ax in (left, right):
        _steps_axis(ax)
    left.set_ylabel("evaluation return")
    right.set_xlabel("candidate T (env steps)")
    right.set_ylabel("late gain: rise over the last 0.2 T (% of return at T)")
    right.yaxis.label.set_size(8)
    _suptitle(fig, title)
    return fig


def compression_ratios(runs: pd.DataFrame, title: str) -> plt.Figure:
    """Nominal compression ratio (the paper's ``(32 / bits) / (1 - sparsity)``: non-zero values
    only) beside the real stored ratio of the quantized network (the deployment artifact: values,
    indices, biases and scales), per sparsity, for every QAT bit width present; log scale.

    :param runs: :func:`nnc4rl.study.results.load_runs` rows of one figure.
    """
    df = runs
    if "current" in df.columns:
        df = df[df["current"].astype(bool)]
    q = df[df["point"] == "qat_end"]
    rows = []
    for (env, arch, s, bits), g in q.groupby(["env", "arch", "sparsity", "eval_bits"]):
        rows.append(
            {
                "panel": f"{_short(env)} ({arch})",
                "sparsity": f"{s:g}",
                "ratio": g["nominal_ratio"].mean(),
                "what": f"nominal, int{bits} (paper)",
            }
        )
        rows.append({"panel": f"{_short(env)} ({arch})", "sparsity": f"{s:g}",
                     "ratio": g["real_ratio"].mean(), "what": f"real stored, int{bits}"})  # fmt: skip
    long = pd.DataFrame(rows, columns=["panel", "sparsity", "ratio", "what"])
    panels = list(long.groupby("panel", sort=True))
    with sns.axes_style("whitegrid"):
        fig, axes = _grid(max(1, len(panels)), width=5.0, height=3.4)
    for ax, (name, sub) in zip(axes, panels, strict=False):
        order = sorted(sub["sparsity"].unique(), key=float)
        sns.barplot(data=sub, x="sparsity", y="ratio", hue="what", order=order, ax=ax,
                    palette="Paired")  # fmt: skip
        ax.set_yscale("log")
        for container in ax.containers:
            ax.bar_label(container, fmt="%.0f", fontsize=6, padding=1)
        ax.set_ylabel("compression ratio vs fp32 (log)")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
    _suptitle(fig, title)
    return fig


def _normalized_tasks(runs: pd.DataFrame, variant: str) -> dict[tuple, np.ndarray]:
    """Per task (env, network, sparsity; the key ends with the sparsity) the per-seed return
    normalised by the same seed's dense return (:func:`nnc4rl.study.stats.normalize_to_reference`)."""
    values, dense = per_seed(runs, variant), per_seed(runs, "dense")
    out = {}
    for key, v in values.items():
        ref = dense.get((*key[:4], 0.0))
        if ref:
            _, x, r = stats.paired(v, ref)
            norm = stats.normalize_to_reference(x, r)
            if np.isfinite(norm).any():
                out[key] = norm[np.isfinite(norm)]
    return out


def aggregate(runs: pd.DataFrame, title: str, n_boot: int = 2000) -> plt.Figure:
    """rliable-style summary (Agarwal et al. 2021) of one figure's runs: left, the interquartile
    mean of the dense-normalised return (per seed, against the same seed's dense run) of every
    compressed variant over all its tasks (env x network x sparsity), with a stratified-bootstrap
    95 % interval; right, the probability that pruned + quantized beats each reference on the
    same task, with its stratified-bootstrap interval. Only tasks with at least
    :data:`nnc4rl.study.readings.MIN_SEEDS` seeds (on both sides) are aggregated, so a partial study
    gives no one-seed task frozen weight; with none, every task is used and only the estimate
    is drawn.

    :param runs: :func:`nnc4rl.study.results.load_runs` rows of one figure.
    :param n_boot: bootstrap resamples.
    """

    def enough(tasks: dict) -> tuple[dict, str]:
        """The tasks whose every side has MIN_SEEDS runs (all, if none has) and a note."""
        full = {k: v for k, v in tasks.items() if min(map(len, v)) >= MIN_SEEDS}
        if not full:
            return tasks, f"{count(len(tasks), 'task')}, too few seeds for an interval"
        left = len(tasks) - len(full)
        return full, count(len(full), "task") + (f" ({left} with 1 seed left out)" if left else "")

    names = [v for v in _order(runs["variant"]) if v != "dense"]
    iqm_rows = []
    for name in names:
        by_task = _normalized_tasks(runs, name)
        if by_task:
            kept, note = enough({k: (v,) for k, v in by_task.items()})
            tasks = [v for (v,) in kept.values()]
            lo, hi = stats.stratified_bootstrap_ci(tasks, n_boot=n_boot)
            at = sorted({k[-1] for k in kept})
            where = "sparsity " + (", ".join(f"{x:g}" for x in at) if len(at) <= 3
                                   else f"{at[0]:g}-{at[-1]:g}")  # fmt: skip
            iqm_rows.append((name, stats.iqm(tasks), lo, hi, f"{note}: {where}"))
    pq = per_seed(runs, "pruned + quantized")
    poi_rows = []
    for ref in ("pruned", "pruned, 1.2 T", "dense"):
        other = per_seed(runs, ref)
        ref_key = {k: k if ref != "dense" else (*k[:4], 0.0) for k in pq}
        pairs = {k: (list(v.values()), list(other[ref_key[k]].values()))
                 for k, v in pq.items() if ref_key[k] in other}  # fmt: skip
        if pairs:
            pairs, note = enough(pairs)
            xs, ys = [x for x, _ in pairs.values()], [y for _, y in pairs.values()]
            lo, hi = stats.probability_of_improvement_ci(xs, ys, n_boot=n_boot)
            poi_rows.append((f"P(pruned + quantized > {ref})",
                             stats.probability_of_improvement(xs, ys), lo, hi, note))  # fmt: skip
    with sns.axes_style("whitegrid"):
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 0.5 * max(len(iqm_rows), 3) + 2))
    for ax, rows, xlabel in ((left, iqm_rows, "IQM of return / same seed's dense return"),
                             (right, poi_rows, "probability of improvement")):  # fmt: skip
        for i, (name, est, lo, hi, _) in enumerate(rows):
            color = STYLE.get(SERIES.get(name, name), OTHER)["color"] if ax is left else "tab:red"
            if np.isfinite(lo):
                ax.plot([lo, hi], [i, i], color=color, linewidth=6, alpha=0.35,
                        solid_capstyle="butt")  # fmt: skip
            ax.plot([est], [i], marker="|", markersize=14, color=color)
        # the estimate and its tasks as a second tick-label line: never over a bar
        ax.set_yticks(range(len(rows)), [f"{r[0]}\n{r[1]:.3f} ({r[4]})"
                                         for r in rows], fontsize=7)  # fmt: skip
        ax.set_ylim(-0.7, max(len(rows), 1) - 0.3)
        ax.invert_yaxis()
        ax.set_xlabel(xlabel)
        if not rows:
            _say_empty(ax)
    left.axvline(1.0, color="tab:green", linestyle="--", linewidth=1)
    right.axvline(0.5, color="grey", linestyle=":", linewidth=1)
    right.set_xlim(0, 1)
    fig.text(0.01, 0.005, "Each row aggregates the sparsities its variant was run at (listed): "
             "rows over different sparsities are not directly comparable.", fontsize=7)  # fmt: skip
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
    T = plans[0].qat_start  # the paper's T
    for t, name in ((plans[0].pruning_start, "0.2 T"), (plans[0].pruning_end, "0.8 T"), (T, "T")):
        ax.axvline(t, color="grey", linestyle=":", linewidth=1)
        ax.text(t, 1.01, name, transform=ax.get_xaxis_transform(), ha="center", fontsize=8)
    _steps_axis(ax)
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
    _steps_axis(ax)
    ax.set_ylabel("sparsity")
    ax.set_title(_wrap(fig, title), fontsize=10)
    fig.tight_layout()
    return fig


def save(fig: plt.Figure, profile: str, name: str, root: str | Path | None = None) -> list[Path]:
    """Save ``fig`` as ``figures/<profile>/<name>.png`` and ``.pdf``; returns the paths.

    The files carry no creation date, so redrawing a figure from the same data gives the same
    bytes and a shipped figure stays unchanged in git.
    """
    folder = Path(root or repo_root() / "figures") / profile
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=130)
    fig.savefig(paths[1], metadata={"CreationDate": None, "ModDate": None})
    return paths

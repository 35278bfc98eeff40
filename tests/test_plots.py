"""Figures draw what the data hold: every seed as a point, t intervals (none at one seed),
phases from the training plan, titles with profile, T, seeds and label."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from synthetic_runs import synthetic_curves, synthetic_runs  # noqa: E402

from nnc4rl.compress.plan import TrainingPlan  # noqa: E402
from nnc4rl.study import plots, stats  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _points(ax) -> int:
    return sum(len(c.get_offsets()) for c in ax.collections if hasattr(c, "get_offsets"))


def test_caption_counts_the_seeds_present():
    runs = synthetic_runs(seeds=3, T=600)
    assert plots.caption("smoke", runs, "pipeline check: x") == (
        "smoke profile: T = 600, 3 seeds; pipeline check: x"
    )
    assert plots.caption("mini", runs[runs["seed"] < 2]) == "mini profile: T = 600, 2 seeds"
    filling = runs[(runs["seed"] < 2) | (runs["sparsity"] == 0)]  # a study still running
    assert plots.caption("mini", filling) == "mini profile: T = 600, 2-3 seeds per setting"


def test_a_figure_without_runs_says_so():
    """A profile whose group has not run yet (the mini DQN check while the SAC study fills in)
    draws labelled empty panels, not bare axes with a "T = none" title."""
    empty = synthetic_runs(seeds=1).iloc[:0]
    assert plots.caption("mini", empty, "pipeline check") == (
        f"mini profile: {plots.NO_RUNS}; pipeline check"
    )
    for draw in (plots.sparsity_returns, plots.compression_ratios, plots.aggregate):
        fig = draw(empty, "t")
        texts = [t.get_text() for ax in fig.axes if ax.get_visible() for t in ax.texts]
        assert plots.NO_RUNS in texts, draw.__name__
    fig = plots.learning_curves(synthetic_curves(synthetic_runs(seeds=1)).iloc[:0], "t")
    assert [t.get_text() for ax in fig.axes for t in ax.texts] == [plots.NO_RUNS]
    fig = plots.sparsity_returns(synthetic_runs(seeds=2), "t")
    assert all(plots.NO_RUNS not in t.get_text() for ax in fig.axes for t in ax.texts)


def test_sparsity_returns_draws_every_seed_and_t_intervals():
    runs = synthetic_runs(seeds=4, sparsities=(0.0, 0.5, 0.9), controls_at=(0.9,))
    fig = plots.sparsity_returns(runs, "Figure 4 (mini profile: T = 1,000, 4 seed(s))")
    ax, controls = fig.axes

    def points(a) -> int:
        return sum(
            len(c.get_offsets()) for c in a.collections if type(c).__name__ == "PathCollection"
        )

    # the paper's panel: one point per run and evaluation point (a control's repeated T point is
    # not drawn twice): 3 sparsities x (T, QAT) + dense fine-tuned to 1.2 T, for 4 seeds
    assert points(ax) == 4 * (3 * 2 + 1)
    labels = [t.get_text() for t in ax.get_legend().texts]
    assert labels == ["pruned", "pruned + quantized", "quantized only", "dense", "dense, 1.2 T"]
    # the controls beside it: the control at 0.9 with QAT (0.5, 0.9) and the dense reference
    assert points(controls) == 4 * (1 + 2 + 1)
    assert [t.get_text() for t in controls.get_legend().texts] == [
        "pruned + quantized", "pruned, 1.2 T", "dense, 1.2 T"]  # fmt: skip
    # error bars of the pruned line span the t interval of its seeds at 0.5
    seg = [c for c in ax.collections if type(c).__name__ == "LineCollection"]
    spans = {tuple(np.round(sorted(s[:, 1]), 6)) for c in seg for s in c.get_segments()}
    x = runs[(runs["variant"] == "pruned") & (runs["sparsity"] == 0.5)]["return_mean"]
    assert tuple(np.round(stats.t_interval(x), 6)) in spans
    assert "4 seed(s)" in fig._suptitle.get_text()


def test_one_seed_draws_points_and_no_interval():
    runs = synthetic_runs(seeds=1, sparsities=(0.0, 0.5))
    fig = plots.sparsity_returns(runs, "t")
    ax = fig.axes[0]
    segs = [
        s for c in ax.collections if type(c).__name__ == "LineCollection" for s in c.get_segments()
    ]
    assert all(
        s.size == 0 or np.isnan(s).any() or np.ptp(s[:, 1]) == 0 for s in segs
    )  # no error bar has width
    assert not [
        p for p in ax.patches if p.get_height() > 0 and p.get_width() > 0 and p.get_alpha() == 0.08
    ]


def test_learning_curves_shade_the_plans_phases():
    runs = synthetic_runs(seeds=2, sparsities=(0.0, 0.5), T=1000)
    fig = plots.learning_curves(synthetic_curves(runs), "curves")
    pruned_ax = next(a for a in fig.axes if a.get_title().endswith("sparsity 0.5"))
    plan = TrainingPlan(1000, final_sparsity=0.5, quantize=True)
    edges = sorted(
        {round(x, 6) for p in pruned_ax.patches for x in (p.get_x(), p.get_x() + p.get_width())}
    )
    expected = [0, plan.pruning_start, plan.pruning_end, plan.qat_start, plan.total_steps]
    assert edges == [round(float(e), 6) for e in expected]
    texts = {t.get_text() for t in pruned_ax.texts}
    assert {"dense", "pruning", "fine-tuning", "QAT"} <= texts
    dense_ax = next(a for a in fig.axes if a.get_title().endswith("sparsity 0"))
    assert "pruning" not in {t.get_text() for t in dense_ax.texts}
    # step ticks stay short enough not to run into each other at a T of 1e5 or 1e7
    assert [pruned_ax.xaxis.get_major_formatter()(x) for x in (120_000, 1.2e7)] == ["120k", "12M"]


def test_compression_ratios_show_nominal_and_real():
    runs = synthetic_runs(seeds=2, sparsities=(0.0, 0.9), int4_at=(0.9,))
    fig = plots.compression_ratios(runs, "ratios")
    ax = fig.axes[0]
    heights = sorted(round(p.get_height(), 3) for p in ax.patches if p.get_height() > 0)
    q = runs[runs["point"] == "qat_end"]
    for col in ("nominal_ratio", "real_ratio"):
        for v in q.groupby(["sparsity", "eval_bits"])[col].mean():
            assert round(v, 3) in heights
    assert {t.get_text() for t in ax.get_legend().texts} >= {
        "nominal, int8 (paper)",
        "real stored, int4",
    }


def test_aggregate_estimates_match_stats():
    runs = synthetic_runs(
        seeds=5, sparsities=(0.0, 0.5, 0.9), qat_gain=0.02, noise=2.0, seed_sd=1.0
    )
    fig = plots.aggregate(runs, "agg", n_boot=200)
    left, right = fig.axes[:2]
    # each row's label: the name, then the estimate and its tasks on a second line
    labels = [t.get_text().split("\n") for t in left.get_yticklabels()]
    assert [name for name, _ in labels[:2]] == ["pruned", "pruned + quantized"]
    poi = dict(t.get_text().split("\n") for t in right.get_yticklabels())
    estimate = float(poi["P(pruned + quantized > pruned)"].split()[0])
    assert estimate > 0.9  # +2 % of dense against noise 2: QAT wins nearly every pair
    pq, pr = (
        runs[(runs["variant"] == v) & (runs["sparsity"] > 0)]
        for v in ("pruned + quantized", "pruned")
    )
    xs = [g["return_mean"].to_numpy() for _, g in pq.groupby("sparsity")]
    ys = [g["return_mean"].to_numpy() for _, g in pr.groupby("sparsity")]
    assert estimate == pytest.approx(stats.probability_of_improvement(xs, ys), abs=5e-4)


def test_aggregate_leaves_one_seed_tasks_out_of_the_intervals():
    # a study still running: 3 seeds at 0 and 0.5, seed 0 only at 0.9
    runs = synthetic_runs(seeds=3, sparsities=(0.0, 0.5, 0.9), qat_gain=0.02, noise=2.0)
    partial = runs[(runs["sparsity"] < 0.9) | (runs["seed"] == 0)]
    fig = plots.aggregate(partial, "agg", n_boot=200)
    left, right = fig.axes[:2]
    texts = [t.get_text() for ax in (left, right) for t in ax.get_yticklabels()]
    assert any("1 task (1 with 1 seed left out): sparsity 0.5" in t for t in texts)
    # only sparsity 0.9 runs: nothing to resample, the estimate alone and no interval band
    only = runs[(runs["sparsity"] == 0.0) | ((runs["sparsity"] == 0.9) & (runs["seed"] == 0))]
    fig = plots.aggregate(only, "agg", n_boot=200)
    rows = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    bands = [line for line in fig.axes[0].lines if line.get_linewidth() == 6]
    assert any("too few seeds for an interval" in t for t in rows)
    # a band for each row with seeds to resample (quantized only, at sparsity 0), none otherwise
    assert len(bands) == sum("too few seeds" not in t for t in rows) < len(rows)


def test_a_redrawn_figure_has_the_same_bytes(tmp_path, monkeypatch):
    """Shipped figures stay unchanged in git when `make reproduce` redraws them from the data,
    on another day (matplotlib reads the date from SOURCE_DATE_EPOCH when it is set)."""
    import matplotlib.pyplot as plt

    from nnc4rl.study.plots import save

    contents = []
    for day in (1, 2):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", str(day * 86_400))
        fig, ax = plt.subplots()
        ax.plot([0, 1, 2], [3, 1, 2])
        contents.append([p.read_bytes() for p in save(fig, "p", "f", root=tmp_path)])
        plt.close(fig)
    assert contents[0] == contents[1]


def test_a_wrapped_title_keeps_T_and_its_number_together():
    fig = plt.figure(figsize=(4, 3))  # 44 characters per line
    title = "Figure 4, learning curves (mini profile: T = 100,000, 5 seeds; a long label)"
    for width in range(30, 80):
        fig.set_figwidth(width / 11)
        lines = plots._wrap(fig, title).split("\n")
        assert any("T\u00a0=\u00a0100,000" in line for line in lines), lines

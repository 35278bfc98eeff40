"""summarize / env_table / write_tables on synthetic run tables: Student-t intervals, paired
columns against the same seed's dense run, controls, one-seed settings."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from synthetic_runs import synthetic_runs

from nnc4rl.study import results, stats


def _one(summary: pd.DataFrame, variant: str, sparsity: float) -> pd.Series:
    sel = summary[(summary["variant"] == variant) & (summary["sparsity"] == sparsity)]
    assert len(sel) == 1, (variant, sparsity, len(sel))
    return sel.iloc[0]


def test_student_t_interval_over_seeds():
    runs = synthetic_runs(seeds=5)
    summary = results.summarize(runs)
    for (variant, s), g in results._main_run_rows(runs).groupby(["variant", "sparsity"]):
        row = _one(summary, variant, s)
        x = g.sort_values("seed")["return_mean"].to_numpy()
        assert row["n_seeds"] == 5 and row["mean"] == pytest.approx(x.mean())
        lo, hi = stats.t_interval(x)
        assert (row["t95_low"], row["t95_high"]) == pytest.approx((lo, hi))
        assert row["t95_low"] < row["mean"] < row["t95_high"]


def test_paired_columns_use_the_same_seeds_dense_run():
    # large seed luck (sd 100) and a 10 % loss at 0.9: the paired interval sees the loss, the
    # unpaired intervals of the two means overlap
    runs = synthetic_runs(seeds=5, seed_sd=100.0, noise=3.0, loss=lambda s: 0.1 * (s >= 0.9))
    summary = results.summarize(runs)
    dense = runs[(runs["variant"] == "dense") & ~runs["extra_finetune"]]
    dense = dense.set_index("seed")["return_mean"]
    pruned = runs[(runs["variant"] == "pruned") & (runs["sparsity"] == 0.9)]
    d = pruned.set_index("seed")["return_mean"] - dense
    row = _one(summary, "pruned", 0.9)
    assert row["n_paired"] == 5 and row["diff_vs_dense"] == pytest.approx(d.mean())
    assert (row["diff_t95_low"], row["diff_t95_high"]) == pytest.approx(stats.t_interval(d))
    assert row["diff_t95_high"] < 0  # the loss is seen
    dense_row = _one(summary, "dense", 0.0)
    assert row["t95_high"] > dense_row["t95_low"]  # unpaired intervals overlap
    assert row["norm_vs_dense"] == pytest.approx(np.mean(1 + d / dense.abs()))
    assert row["dense_paired_mean"] == pytest.approx(dense.mean())
    assert math.isnan(dense_row["diff_vs_dense"])  # the reference is not compared with itself
    assert not math.isnan(_one(summary, "quantized only", 0.0)["diff_vs_dense"])


def test_a_network_trained_1_2_T_is_compared_with_dense_trained_as_long():
    # QAT gains 3 % of dense, so does dense trained on to 1.2 T: equal length shows no gain,
    # the paper's comparison (against dense at T) shows the head start
    runs = synthetic_runs(seeds=5, seed_sd=100.0, noise=3.0, qat_gain=0.03, extra_gain=0.03)
    summary = results.summarize(runs)
    by_seed = {v: runs[(runs["variant"] == v) & (runs["sparsity"] == s) & ~(
        (v == "dense") & runs["extra_finetune"])].set_index("seed")["return_mean"]
        for v, s in (("dense", 0.0), ("dense, 1.2 T", 0.0), ("pruned + quantized", 0.9))}  # fmt: skip
    row = _one(summary, "pruned + quantized", 0.9)
    assert row["reference"] == "dense, 1.2 T" and row["n_paired"] == 5
    equal = by_seed["pruned + quantized"] - by_seed["dense, 1.2 T"]
    paper = by_seed["pruned + quantized"] - by_seed["dense"]
    assert row["diff_vs_dense"] == pytest.approx(equal.mean())
    assert (row["diff_t95_low"], row["diff_t95_high"]) == pytest.approx(stats.t_interval(equal))
    assert row["dense_paired_mean"] == pytest.approx(by_seed["dense, 1.2 T"].mean())
    assert row["paper_diff_vs_dense"] == pytest.approx(paper.mean()) and row["paper_n_paired"] == 5
    assert (
        row["paper_diff_t95_low"] > 0 > row["diff_t95_low"]
    )  # the head start, gone at equal length
    assert row["max_loss"] == pytest.approx(-row["diff_t95_low"] / abs(row["dense_paired_mean"]))
    pruned = _one(summary, "pruned", 0.9)  # at T: against dense at T, both comparisons agree
    assert (
        pruned["reference"] == "dense" and pruned["diff_vs_dense"] == pruned["paper_diff_vs_dense"]
    )
    assert math.isnan(_one(summary, "dense, 1.2 T", 0.0)["diff_vs_dense"])  # the reference itself
    without = results.summarize(synthetic_runs(seeds=5, dense_long=False))
    assert _one(without, "pruned + quantized", 0.9)["n_paired"] == 0  # no reference as long


def test_max_loss_is_the_interval_lower_bound_in_units_of_dense():
    assert results.max_loss(-30.0, 600.0) == pytest.approx(0.05)
    assert results.max_loss(-30.0, -600.0) == pytest.approx(0.05)  # |dense| scales it
    assert results.max_loss(5.0, 600.0) == 0.0  # the interval excludes any loss
    assert math.isnan(results.max_loss(math.nan, 600.0)) and math.isnan(results.max_loss(-1.0, 0.0))


def test_one_seed_has_no_interval():
    summary = results.summarize(synthetic_runs(seeds=1))
    assert (summary["n_seeds"] == 1).all()
    assert summary["t95_low"].isna().all() and summary["t95_high"].isna().all()
    assert summary["diff_t95_low"].isna().all()
    table = results.env_table(summary, "HalfCheetah-v4", "mlp")
    assert set(table["pruned 95% t-CI"].dropna()) == {"n/a (1 seed)"}


def test_controls_are_their_own_variants_and_do_not_duplicate_the_main_run():
    runs = synthetic_runs(seeds=3, controls_at=(0.98,), int4_at=(0.98,), ptq=True)
    summary = results.summarize(runs)
    main = runs[(runs["run_id"].str.endswith(("seed0", "seed1", "seed2")))]
    pruned = main[(main["point"] == "finetune_end") & (main["sparsity"] == 0.98)]
    assert _one(summary, "pruned", 0.98)["mean"] == pytest.approx(pruned["return_mean"].mean())
    names = set(summary[summary["sparsity"] == 0.98]["variant"])
    assert {"pruned, 1.2 T", "pruned + quantized (int4)", "pruned + PTQ int8",
            "pruned + PTQ int4"} <= names  # fmt: skip
    assert _one(summary, "pruned + quantized (int4)", 0.98)["eval_bits"] == 4
    assert _one(summary, "pruned, 1.2 T", 0.98)["eval_bits"] == 32
    control = _one(summary, "pruned, 1.2 T", 0.98)
    assert control["group"] == "mujoco-equal-length" and control["n_paired"] == 3  # dense: "mujoco"
    assert _one(summary, "pruned", 0.98)["group"] == "mujoco"
    table = results.env_table(summary, "HalfCheetah-v4", "mlp")
    assert {"pruned, 1.2 T", "pruned, 1.2 T 95% t-CI", "real_ratio_int4",
            "nominal_ratio_int8"} <= set(table.columns)  # fmt: skip
    ratios = [c for c in table.columns if "_ratio_" in c]
    assert ratios[:2] == ["nominal_ratio_fp32", "real_ratio_fp32"]


def test_duplicate_and_stale_rows():
    runs = synthetic_runs(seeds=2)
    with pytest.raises(ValueError, match="share a setting and seed"):
        results.summarize(pd.concat([runs, runs.iloc[[3]]], ignore_index=True))
    stale = runs.iloc[[3]].assign(current=False, return_mean=-1e9, stale_reason="key changed")
    summary = results.summarize(pd.concat([runs, stale], ignore_index=True))
    assert summary["mean"].min() > -1e6  # the stale row is left out


def test_write_tables_writes_summary_and_env_table(tmp_path):
    runs = synthetic_runs(env="Hopper-v4", seeds=2, sparsities=(0.0, 0.5))
    out = results.write_tables("smoke", runs, data=tmp_path)
    assert "summary.csv" in out and "table05_Hopper-v4_mlp.csv" in out
    back = pd.read_csv(tmp_path / "tables" / "smoke" / "summary.csv")
    assert {"t95_low", "diff_vs_dense", "norm_vs_dense"} <= set(back.columns)
    assert len(back) == len(out["summary.csv"])

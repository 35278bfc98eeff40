"""Readings and claim verdicts follow the data: known effects in synthetic run tables."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from synthetic_runs import synthetic_runs

from nnc4rl import readings
from nnc4rl.readings import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    LOSS,
    NOT_AT_SCALE,
    NOT_MEASURABLE,
    UNDECIDED,
    WITHOUT_LOSS,
)

SPARSITIES = (0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99)


def test_loss_verdict_definition():
    # dense 1000, tolerance 5 %: the bound is -50
    assert readings.loss_verdict(5, -40.0, 10.0, 1000.0) == WITHOUT_LOSS
    assert readings.loss_verdict(5, -60.0, 10.0, 1000.0) == INCONCLUSIVE
    assert readings.loss_verdict(5, -90.0, -60.0, 1000.0) == LOSS
    assert readings.loss_verdict(5, -40.0, 10.0, -1000.0) == WITHOUT_LOSS  # |dense| scales it
    assert readings.loss_verdict(5, -40.0, 10.0, 1000.0, tolerance=0.01) == INCONCLUSIVE
    assert readings.loss_verdict(1, math.nan, math.nan, 1000.0) == NOT_MEASURABLE
    assert readings.loss_verdict(5, -1.0, 1.0, 1000.0, pipeline_check=True) == NOT_MEASURABLE
    assert "-5%" in readings.definition() and "Student-t" in readings.definition()


def test_without_loss_up_to_stops_at_the_first_failure():
    v = pd.Series([WITHOUT_LOSS, INCONCLUSIVE, WITHOUT_LOSS], index=[0.5, 0.8, 0.9])
    assert readings.without_loss_up_to(v) == 0.5  # 0.9 passing does not excuse 0.8
    assert readings.without_loss_up_to(pd.Series([LOSS], index=[0.5])) is None


def _lossy_runs(**kw):
    # no loss up to 0.9, a 30 % loss from 0.95 on; seeds differ by far more than the noise
    return synthetic_runs(sparsities=SPARSITIES, seeds=5, seed_sd=100.0, noise=3.0,
                          loss=lambda s: 0.3 * (s >= 0.95), **kw)  # fmt: skip


def test_figure_reading_follows_the_data():
    lines = readings.figure_reading(_lossy_runs())
    text = "\n".join(lines)
    assert lines[0].startswith("Definition:")
    pq = next(line for line in lines if line.strip().startswith("pruned + quantized vs dense"))
    assert "without loss at 0.5, 0.8, 0.9" in pq and "loss at 0.95, 0.98, 0.99" in pq
    assert "Every sparsity up to 0.9 is without loss" in text
    # a failing low sparsity caps the reading even when higher ones pass
    runs = synthetic_runs(sparsities=SPARSITIES, seeds=5, seed_sd=100.0, noise=3.0,
                          loss=lambda s: 0.3 * (s == 0.8))  # fmt: skip
    text = "\n".join(readings.figure_reading(runs))
    assert "Every sparsity up to 0.5 is without loss" in text


def test_pipeline_check_and_one_seed_draw_no_verdict():
    lines = readings.figure_reading(_lossy_runs(), label="pipeline check: untrained agents")
    text = "\n".join(lines)
    assert lines[0].startswith("Pipeline check") and WITHOUT_LOSS not in text
    one = synthetic_runs(seeds=1, sparsities=(0.0, 0.5))
    text = "\n".join(readings.figure_reading(one))
    assert "not measurable at 0.5" in text and "no interval" in text


def test_compare_and_pooled_gain_see_a_qat_gain_only_against_the_same_runs():
    runs = _lossy_runs(qat_gain=0.02, extra_gain=0.02, controls_at=(0.98,))
    c = readings.compare(runs, "pruned + quantized", "pruned")
    assert set(c["sparsity"]) == set(SPARSITIES) - {0.0} and (c["n"] == 5).all()
    assert (c["low"] > 0).all()  # +2 % of 1000 = +20 against noise 3
    g = readings.pooled_gain(c)
    assert g["n"] == 5 and g["low"] > 0.01 and g["high"] < 0.03
    equal = readings.compare(runs, "pruned + quantized", "pruned, 1.2 T")
    assert list(equal["sparsity"]) == [0.98] and equal.iloc[0]["low"] < 0 < equal.iloc[0]["high"]


def _verdict(table: pd.DataFrame, start: str) -> pd.Series:
    return table[table["claim"].str.startswith(start)].iloc[0]


def test_claims_follow_the_data():
    runs = _lossy_runs(qat_gain=0.02, extra_gain=0.02, controls_at=(0.98,))
    table = readings.claims_table(runs, {"fig4": ""})
    assert list(table.columns) == ["claim", "setting", "paper", "ours", "verdict", "why"]
    assert len(table) == len(readings.CLAIMS)
    cheetah = _verdict(table, "even for HalfCheetah")
    assert cheetah["verdict"] == HOLDS and "5 seeds" in cheetah["ours"]
    assert _verdict(table, "prune and quantize up to 98 %")["verdict"] == NOT_AT_SCALE
    assert _verdict(table, "CNN DQN: prune")["verdict"] == NOT_AT_SCALE
    assert _verdict(table, "quantization + pruning usually")["verdict"] == HOLDS
    control = _verdict(table, "... and still does")
    assert control["verdict"] == UNDECIDED and "contains 0" in control["why"]
    # HalfCheetah at 80 % with a loss: the claim does not hold
    lossy = synthetic_runs(
        sparsities=SPARSITIES, seeds=5, noise=3.0, loss=lambda s: 0.2 * (s >= 0.8)
    )
    table = readings.claims_table(lossy, {"fig4": ""})
    row = _verdict(table, "even for HalfCheetah")
    assert row["verdict"] == FAILS and "a loss at 0.8" in row["why"]


def test_claims_at_a_pipeline_check_are_not_measurable():
    runs = _lossy_runs(qat_gain=0.02)
    table = readings.claims_table(runs, {"fig4": "pipeline check: untrained agents"})
    assert set(table["verdict"]) == {NOT_AT_SCALE}
    assert _verdict(table, "even for HalfCheetah")["ours"] == "pipeline check only"
    # a study still running (only dense so far) is not run yet, not a pipeline check
    dense = runs[runs["sparsity"] == 0.0]
    row = _verdict(readings.claims_table(dense, {"fig4": ""}), "even for HalfCheetah")
    assert row["ours"] == "not run" and "sparsity 0.8 was not run" in row["why"]
    empty = readings.claims_table(runs.iloc[0:0], {"fig4": ""})
    assert set(empty["verdict"]) == {NOT_AT_SCALE}


def test_figure_labels_take_each_figures_main_group():
    from nnc4rl.profiles import load_profile

    labels = readings.figure_labels(load_profile("smoke"))
    assert set(labels) == {"fig4", "fig5", "fig6"}
    assert all(readings.is_pipeline_check(v) for v in labels.values())


@pytest.mark.parametrize("gain, verdict", [(0.05, HOLDS), (0.0, FAILS)])
def test_beats_dense_claim(gain, verdict):
    runs = synthetic_runs(seeds=5, noise=1.0, qat_gain=gain)
    row = _verdict(readings.claims_table(runs, {"fig4": ""}), "which leads to better")
    assert row["verdict"] == verdict

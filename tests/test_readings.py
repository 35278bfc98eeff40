"""Readings and claim verdicts follow the data: known effects in synthetic run tables."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest
from synthetic_runs import synthetic_runs

from nnc4rl.study import claims, readings
from nnc4rl.study.readings import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    LOSS,
    NOT_AT_SCALE,
    NOT_MEASURABLE,
    UNDECIDED,
    WITHOUT_LOSS,
    control_notes,
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
    assert pq.strip().startswith("pruned + quantized vs dense, 1.2 T (paired)")  # equal length
    for s in (0.5, 0.8, 0.9):
        assert f"{s:g}: without loss (no loss larger than " in pq
    for s in (0.95, 0.98, 0.99):
        assert re.search(rf"{s:g}: loss \(no loss larger than (2\d|3\d)\.\d % \(95 %\)\)", pq)
    paper = next(line for line in lines if "the paper's comparison, pruned + quantized" in line)
    assert "without loss at 0.5, 0.8, 0.9" in paper and "loss at 0.95, 0.98, 0.99" in paper
    assert "Every sparsity up to 0.9 is without loss" in text
    # a failing low sparsity caps the reading even when higher ones pass
    runs = synthetic_runs(sparsities=SPARSITIES, seeds=5, seed_sd=100.0, noise=3.0,
                          loss=lambda s: 0.3 * (s == 0.8))  # fmt: skip
    text = "\n".join(readings.figure_reading(runs))
    assert "Every sparsity up to 0.5 is without loss" in text
    # a failing lowest sparsity caps it at nothing, yet the passing ones are not denied
    runs = synthetic_runs(sparsities=SPARSITIES, seeds=5, seed_sd=100.0, noise=3.0,
                          loss=lambda s: 0.3 * (s == 0.5))  # fmt: skip
    text = "\n".join(readings.figure_reading(runs))
    assert "holds for no X: the lowest sparsity is not without loss (0.5: loss)" in text
    assert "No sparsity is without loss" not in text and "without loss at 0.8" in text
    runs = synthetic_runs(sparsities=SPARSITIES, seeds=5, seed_sd=100.0, noise=3.0,
                          loss=lambda s: 0.3 * (s > 0))  # fmt: skip
    assert "No sparsity is without loss" in "\n".join(readings.figure_reading(runs))


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
    table = claims.claims_table(runs, {"fig4": ""})
    assert list(table.columns) == ["claim", "setting", "paper", "ours", "verdict", "why"]
    assert len(table) == len(claims.CLAIMS)
    cheetah = _verdict(table, "even for HalfCheetah")
    assert cheetah["verdict"] == HOLDS and "5 seeds" in cheetah["ours"]
    assert _verdict(table, "prune and quantize up to 98 %")["verdict"] == NOT_AT_SCALE
    assert _verdict(table, "CNN DQN: prune")["verdict"] == NOT_AT_SCALE
    # QAT's gain is what the same 0.2 T of fine-tuning gives: equal length sees none
    usual = _verdict(table, "quantization + pruning usually")
    assert usual["verdict"] == UNDECIDED and "contains 0" in usual["why"]
    paper = _verdict(table, "... the paper's comparison: against pruning at T")
    assert paper["verdict"] == HOLDS and "the row above compares equal lengths" in paper["why"]
    # HalfCheetah at 80 % with a loss: the claim does not hold
    lossy = synthetic_runs(
        sparsities=SPARSITIES, seeds=5, noise=3.0, loss=lambda s: 0.2 * (s >= 0.8)
    )
    table = claims.claims_table(lossy, {"fig4": ""})
    row = _verdict(table, "even for HalfCheetah")
    assert row["verdict"] == FAILS and "a loss at 0.8" in row["why"]


def test_claims_at_a_pipeline_check_are_not_measurable():
    runs = _lossy_runs(qat_gain=0.02)
    table = claims.claims_table(runs, {"fig4": "pipeline check: untrained agents"})
    assert set(table["verdict"]) == {NOT_AT_SCALE}
    assert _verdict(table, "even for HalfCheetah")["ours"] == "pipeline check only"
    # a study still running (only dense so far) is not run yet, not a pipeline check
    dense = runs[runs["sparsity"] == 0.0]
    row = _verdict(claims.claims_table(dense, {"fig4": ""}), "even for HalfCheetah")
    assert row["ours"] == "not run" and "sparsity 0.8 was not run" in row["why"]
    empty = claims.claims_table(runs.iloc[0:0], {"fig4": ""})
    assert set(empty["verdict"]) == {NOT_AT_SCALE}


def test_figure_labels_take_each_figures_main_group():
    from nnc4rl.runs.profiles import load_profile

    labels = readings.figure_labels(load_profile("smoke"))
    assert set(labels) == {"fig4", "fig5", "fig6", "ppo", "pilot"}
    assert all(readings.is_pipeline_check(v) for v in labels.values())


def test_the_ppo_claim_reads_the_ppo_figure_and_stays_out_of_the_papers_pooled_claims():
    sac = synthetic_runs(sparsities=(0.0, 0.9, 0.98), seeds=5, noise=3.0, controls_at=(0.9, 0.98))
    ppo = synthetic_runs(env="Hopper-v4", figure="ppo", group="ppo-mujoco", algo="ppo",
                         sparsities=(0.0, 0.9, 0.98), seeds=5, noise=3.0, qat_gain=0.3,
                         extra_gain=0.3, controls_at=(0.9, 0.98), rng_seed=1)  # fmt: skip
    table = claims.claims_table(pd.concat([sac, ppo], ignore_index=True), {"fig4": "", "ppo": ""})
    row = _verdict(table, "beyond the paper: does 98 % + int8 hold for PPO")
    assert row["setting"] == "PPO: Hopper-v4" and row["verdict"] == HOLDS
    assert row["ours"].startswith("Hopper-v4: ") and "5 seeds" in row["ours"]
    # PPO's +30 % QAT gain would make "beats pruning at T" hold if it were pooled in
    assert _verdict(table, "... the paper's comparison: against pruning at T")["verdict"] != HOLDS
    lossy = synthetic_runs(env="Hopper-v4", figure="ppo", group="ppo-mujoco", algo="ppo",
                           sparsities=(0.0, 0.9, 0.98), seeds=5, noise=3.0,
                           loss=lambda s: 0.3 * (s >= 0.98))  # fmt: skip
    row = _verdict(claims.claims_table(lossy, {"ppo": ""}), "beyond the paper")
    assert row["verdict"] == FAILS and "a loss at 0.98" in row["why"]


@pytest.mark.parametrize("gain, verdict", [(0.05, HOLDS), (0.0, FAILS)])
def test_beats_dense_claim(gain, verdict):
    runs = synthetic_runs(seeds=5, noise=1.0, qat_gain=gain)
    row = _verdict(claims.claims_table(runs, {"fig4": ""}), "which leads to better")
    assert row["verdict"] == verdict
    # "ours" names the settings that are significantly better, the ones the reason names
    named = re.match(r"significantly better at (\d+) of \d+ settings( \(sparsity ([\d., ]+)\))? "
                     r"\(paired t-tests, Holm-corrected\)$", row["ours"])  # fmt: skip
    assert named and (int(named[1]) > 0) == (verdict == HOLDS)
    if verdict == HOLDS:
        assert f"run at sparsity {named[3]} in " in row["why"]


def _one_seed_beyond(runs: pd.DataFrame, sparsities: tuple[float, ...]) -> pd.DataFrame:
    """A study still running: only seed 0 has finished at ``sparsities``."""
    return runs[~runs["sparsity"].isin(sparsities) | (runs["seed"] == 0)]


def test_a_measured_loss_decides_while_other_sparsities_lack_seeds():
    lossy = synthetic_runs(sparsities=(0.0, 0.5, 0.7, 0.8), seeds=5, noise=3.0,
                           loss=lambda s: 0.3 * (s == 0.5))  # fmt: skip
    row = _verdict(claims.claims_table(_one_seed_beyond(lossy, (0.7, 0.8)), {"fig4": ""}),
                   "even for HalfCheetah")  # fmt: skip
    assert row["verdict"] == FAILS and "a loss at 0.5" in row["why"]
    clean = synthetic_runs(sparsities=(0.0, 0.5, 0.7, 0.8), seeds=5, noise=3.0)
    row = _verdict(claims.claims_table(_one_seed_beyond(clean, (0.7, 0.8)), {"fig4": ""}),
                   "even for HalfCheetah")  # fmt: skip
    assert row["verdict"] == NOT_AT_SCALE
    assert "fewer than 2 paired seeds at 0.7, 0.8" in row["why"] and "1 seed," in row["ours"]


def test_a_partial_study_reads_as_not_measurable_yet():
    # dense with 4 seeds, every sparsity with seed 0 only: nothing is measurable, nothing lost
    runs = _one_seed_beyond(synthetic_runs(seeds=4, sparsities=(0.0, 0.5, 0.9)), (0.5, 0.9))
    text = "\n".join(readings.figure_reading(runs))
    assert "not measurable yet" in text and "No sparsity is without loss" not in text
    assert "(HalfCheetah-v4" not in text and "4 seeds)" in text
    table = claims.claims_table(runs, {"fig4": ""})
    row = _verdict(table, "... the paper's comparison: against pruning at T")
    assert row["verdict"] == NOT_AT_SCALE and row["ours"] == "2 paired settings so far, 1 seed each"
    row = _verdict(table, "quantization + pruning usually")  # no equal-length control run at all
    assert row["verdict"] == NOT_AT_SCALE and row["ours"] == "no pruned, 1.2 T runs"


def test_pooled_gain_pools_only_a_balanced_block():
    # +10 % at 0.5 over four seeds; -10 % at 0.7, 0.8 and 0.9 from seed 0 alone
    rows = [dict(sparsity=0.5, n=4, scale=1000.0, per_seed={k: 100.0 + k for k in range(4)})]
    rows += [dict(sparsity=s, n=1, scale=1000.0, per_seed={0: -100.0}) for s in (0.7, 0.8, 0.9)]
    g = readings.pooled_gain(pd.DataFrame(rows))
    assert g["settings"] == 1 and g["left_out"] == 3 and g["n"] == 4
    assert g["mean"] == pytest.approx(0.1015)  # every seed averaged over 0.5 alone, not +6 %


def test_compare_scales_by_the_dense_run_of_the_seeds_compared():
    runs = synthetic_runs(seeds=4, sparsities=(0.0, 0.5), seed_sd=0.0, noise=1.0)
    lucky = (runs["seed"] == 3) & (runs["sparsity"] == 0.0)
    runs.loc[lucky, "return_mean"] += 4000.0  # seed 3's dense run, 5x the others
    runs = runs[~((runs["seed"] == 3) & (runs["sparsity"] == 0.5))]  # ... not compared at 0.5
    c = readings.compare(runs, "pruned + quantized", "pruned")
    assert c.iloc[0]["n"] == 3 and c.iloc[0]["scale"] == pytest.approx(1000.0, abs=5.0)


def test_beats_dense_rarely_holds_without_an_effect():
    # 40 studies with no effect at all, 3 envs x 6 sparsities x 3 seeds each; uncorrected
    # per-setting t-intervals said "holds" in 11 of these 40 studies
    claim = next(c for c in claims.CLAIMS if c.kind == "beats_dense")
    holds = 0
    for i in range(40):
        envs = ("HalfCheetah-v4", "Hopper-v4", "Walker2d-v4")
        runs = pd.concat([synthetic_runs(env=e, sparsities=SPARSITIES, seeds=3, noise=30.0,
                                         rng_seed=100 * i + j) for j, e in enumerate(envs)])  # fmt: skip
        holds += claims._beats_claim(claim, runs, {"fig4": ""}, readings.TOLERANCE)[1] == HOLDS
    assert holds <= 4  # Holm keeps the family-wise rate at 5 %: about 2 of 40


def test_loss_bound_says_how_much_loss_the_data_rule_out():
    assert readings.loss_bound(0.0731) == "no loss larger than 7.3 % (95 %)"
    assert readings.loss_bound(0.0) == "no loss (the 95 % interval is above 0)"
    assert readings.loss_bound(math.nan) == "no bound"


def test_shared_start_finds_runs_of_a_seed_that_differ_before_pruning():
    def curve(rid, seed, early, late):  # T = 100: steps 10 and 15 are before pruning (20)
        return [dict(run_id=rid, env="E", arch="mlp", T=100, seed=seed, step=st, return_mean=v)
                for st, v in ((10, early), (15, early + 1), (50, late))]  # fmt: skip

    rows = curve("a0", 0, 1.0, 5.0) + curve("b0", 0, 1.0, 9.0)  # same start, other endings
    rows += curve("a1", 1, 2.0, 5.0) + curve("b1", 1, 2.0, 6.0) + curve("c1", 1, 2.5, 5.0)
    curves = pd.DataFrame(rows)
    assert readings.shared_start(curves) == {("E", "mlp", 100, 1): [["a1", "b1"], ["c1"]]}
    assert "E seed 1: 2 groups of 2, 1 runs" in readings.provenance_sentence(curves)
    same = curves[curves["seed"] == 0]
    assert readings.provenance_sentence(same).startswith("Every seed's runs share their start")


def test_control_notes_on_hand_computed_runs():
    # no luck and no noise: every seed returns 1000 at T; int4 QAT 950, pruned 1.2 T 1050
    runs = synthetic_runs(sparsities=(0.0, 0.5, 0.9), seeds=3, seed_sd=0.0, noise=0.0,
                          extra_gain=0.05, controls_at=(0.9,), int4_at=(0.9,), ptq=True)  # fmt: skip
    hit = (runs["variant"] == "pruned + PTQ int8") & (runs["sparsity"] == 0.5) & (runs["seed"] == 2)
    runs.loc[hit, "return_mean"] = 800.0
    int4, ptq = control_notes(runs)
    # (950 - 1050) / 1050 = -9.5 % on every seed: a zero-width interval below -5 %
    assert int4 == ("HalfCheetah-v4, sparsity 0.9: 4-bit QAT minus the same sparsity fine-tuned "
                    "as long without QAT (pruned, 1.2 T; 3 paired seeds): -9.5% [-9.5%, -9.5%] "
                    "of it, loss (a loss of 9.5% to 9.5% (95 %)).")  # fmt: skip
    assert ptq == ("HalfCheetah-v4: PTQ int8 (the network at T rounded to 8 bits, no training) "
                   "keeps every seed within 10% of its fp32 return at 0, 0.9; at 0.5 seed 2 "
                   "loses 20%.")  # fmt: skip
    runs.loc[hit, "return_mean"] = 950.0  # 5 %: within the 10 % a seed may lose unnamed
    assert len(control_notes(runs)) == 1

"""Estimators of nnc4rl.study.stats on hand-computed cases, and the coverage simulation that decides
which interval the figures draw."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from nnc4rl.study import stats


def test_t_interval_hand_computed():
    # x = 1, 2, 3: mean 2, s = 1, n = 3 -> half width t_{0.975, 2} / sqrt(3)
    lo, hi = stats.t_interval([1.0, 2.0, 3.0])
    half = st.t.ppf(0.975, 2) / math.sqrt(3)
    assert lo == pytest.approx(2 - half) and hi == pytest.approx(2 + half)
    assert half == pytest.approx(2.4841, abs=1e-4)  # t_{0.975, 2} = 4.3027


def test_one_seed_gives_no_interval_never_zero_width():
    assert all(math.isnan(v) for v in stats.t_interval([5.0]))
    assert all(math.isnan(v) for v in stats.t_interval([]))
    assert all(math.isnan(v) for v in stats.percentile_bootstrap_ci([5.0]))
    assert all(math.isnan(v) for v in stats.t_interval([5.0, float("nan")]))  # NaN dropped


def test_interval_coverage_at_five_seeds():
    """The reason the figures draw t intervals: at n = 5 the t interval covers ~95 %, the
    percentile bootstrap only ~85 % (normal data)."""
    t_cov = stats.coverage(stats.t_interval, n=5, trials=2000, seed=1)
    boot_cov = stats.coverage(
        lambda x: stats.percentile_bootstrap_ci(x, n_boot=400, seed=2), n=5, trials=1000, seed=1
    )
    assert 0.93 <= t_cov <= 0.97
    assert 0.78 <= boot_cov <= 0.89
    assert boot_cov < t_cov - 0.05


def test_iqm_is_the_trimmed_mean_of_all_runs():
    # 8 values: the middle 4 after dropping 2 at each end
    x = [100.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, -50.0]
    assert stats.iqm(x) == pytest.approx((2 + 3 + 4 + 5) / 4)
    # per-task arrays of different lengths are pooled
    assert stats.iqm([[100.0, 1.0, 2.0], [3.0, 4.0, 5.0, 6.0, -50.0]]) == pytest.approx(3.5)
    assert math.isnan(stats.iqm([]))


def test_probability_of_improvement_hand_computed():
    # task 1: X = [1, 3], Y = [2, 2]: pairs 1>2 no, 1>2 no, 3>2, 3>2 -> 2/4 = 0.5
    # task 2: X = [5], Y = [5, 4]: tie (0.5) + win (1) -> 1.5 / 2 = 0.75
    p = stats.probability_of_improvement([[1.0, 3.0], [5.0]], [[2.0, 2.0], [5.0, 4.0]])
    assert p == pytest.approx((0.5 + 0.75) / 2)
    # matches scipy's Mann-Whitney U statistic on one task
    x, y = np.array([0.3, 1.2, 2.5, 0.9]), np.array([0.1, 1.0, 1.1])
    u = st.mannwhitneyu(x, y).statistic
    assert stats.probability_of_improvement([x], [y]) == pytest.approx(u / (x.size * y.size))
    assert stats.probability_of_improvement([y], [x]) == pytest.approx(1 - u / 12)
    with pytest.raises(ValueError, match="2 tasks for X but 1 for Y"):
        stats.probability_of_improvement([[1.0], [2.0]], [[1.0]])


def test_stratified_bootstrap_resamples_within_tasks():
    # task A is constant: every resample keeps it, so the mean over tasks of the task means
    # varies only with task B's resamples
    def mean_of_means(arrays):
        return float(np.mean([a.mean() for a in arrays]))

    tasks = [[10.0, 10.0, 10.0], [0.0, 1.0, 2.0, 3.0]]
    lo, hi = stats.stratified_bootstrap_ci(tasks, statistic=mean_of_means, n_boot=500, seed=3)
    assert 5.0 <= lo < (10 + 1.5) / 2 < hi <= 6.5  # B's mean ranges over [0, 3]
    assert stats.stratified_bootstrap_ci(tasks, mean_of_means, n_boot=500, seed=3) == (lo, hi)
    lo, hi = stats.stratified_bootstrap_ci([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]], n_boot=300)
    assert lo <= stats.iqm([1, 2, 3, 4, 5, 6]) <= hi
    assert all(math.isnan(v) for v in stats.stratified_bootstrap_ci([[1.0], [2.0]]))
    # one task with a single run would stay frozen in every resample: no interval at all
    assert all(math.isnan(v) for v in stats.stratified_bootstrap_ci([[1.0, 2.0, 3.0], [5.0]]))


def test_probability_of_improvement_ci_brackets_the_estimate():
    x, y = [[3.0, 4.0, 5.0], [1.0, 2.0]], [[1.0, 2.0, 4.5], [0.0, 1.5]]
    p = stats.probability_of_improvement(x, y)
    lo, hi = stats.probability_of_improvement_ci(x, y, n_boot=300)
    assert 0.0 <= lo <= p <= hi <= 1.0 and lo < hi
    # one run of X against four of Y: P = 1 with the zero-width interval (1, 1) without the guard
    one = stats.probability_of_improvement_ci([[9.0]], [[1.0, 2.0, 3.0, 4.0]], n_boot=100)
    assert all(math.isnan(v) for v in one)


def test_t_pvalue_and_holm():
    x = np.array([1.0, 2.5, 0.5, 3.0])
    assert stats.t_pvalue(x) == pytest.approx(st.ttest_1samp(x, 0.0).pvalue)
    assert math.isnan(stats.t_pvalue([1.0])) and math.isnan(stats.t_pvalue([0.0, 0.0]))
    # Holm at 5 %: 0.005 <= 0.05/4, 0.01 <= 0.05/3, then 0.03 > 0.05/2 stops the step-down
    reject = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert reject.tolist() == [True, False, False, True]
    assert stats.holm([0.04, float("nan")]).tolist() == [False, False]  # 0.04 > 0.05/2
    assert stats.holm([0.02]).tolist() == [True]


def test_paired_difference_uses_only_common_seeds():
    value = {0: 11.0, 1: 9.0, 2: 14.0, 7: 100.0}  # seed 7 has no dense run: not paired
    dense = {0: 10.0, 1: 10.0, 2: 10.0, 3: 50.0}
    out = stats.paired_difference(value, dense)
    d = np.array([1.0, -1.0, 4.0])
    assert out["n"] == 3 and out["diff"] == pytest.approx(d.mean())
    lo, hi = stats.t_interval(d)
    assert (out["low"], out["high"]) == pytest.approx((lo, hi))
    assert out["ref_mean"] == pytest.approx(10.0)
    assert out["normalized"] == pytest.approx(np.mean([1.1, 0.9, 1.4]))
    one = stats.paired_difference({0: 1.0}, {0: 2.0})
    assert one["n"] == 1 and math.isnan(one["low"]) and one["diff"] == -1.0
    assert stats.paired_difference({0: 1.0}, {1: 2.0})["n"] == 0
    # a NaN return pairs with nothing (its seed would otherwise count without a value)
    assert stats.paired({0: 1.0, 1: math.nan, 2: 3.0}, {0: 0.0, 1: 0.0, 2: math.nan})[0] == [0]


def test_pairing_removes_the_seeds_luck():
    """Two settings that differ by +1 on every seed while seeds differ by far more: the paired
    interval excludes 0, the unpaired comparison of the two means cannot tell."""
    rng = np.random.default_rng(0)
    base = rng.normal(0, 20, 5)
    value = dict(enumerate(base + 1 + rng.normal(0, 0.1, 5)))
    ref = dict(enumerate(base))
    out = stats.paired_difference(value, ref)
    assert out["low"] > 0
    lo_a, hi_a = stats.t_interval(list(value.values()))
    lo_b, hi_b = stats.t_interval(list(ref.values()))
    assert lo_a < hi_b and lo_b < hi_a  # the unpaired intervals overlap


def test_normalize_to_reference_keeps_higher_is_better():
    norm = stats.normalize_to_reference([12.0, -10.0, -30.0, 5.0], [10.0, -20.0, -20.0, 0.0])
    assert norm[0] == pytest.approx(1.2)  # positive reference: x / ref
    assert norm[1] > 1 > norm[2]  # -10 beats -20, -30 does not
    assert math.isnan(norm[3])

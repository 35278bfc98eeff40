"""Statistics that stay honest at a few seeds (numpy / scipy only).

Per setting the interval of a mean is **Student t**: at 2-10 seeds a percentile bootstrap of the
mean covers the true mean far less often than its nominal 95 % (about 50 % at 2 seeds, 85 % at 5,
for normal data), while the t interval covers about 95 %. One seed gives no interval (NaN), never
a zero-width one.

Across settings the estimators follow rliable (Agarwal, Schwarzer, Castro, Courville & Bellemare,
"Deep Reinforcement Learning at the Edge of the Statistical Precipice", NeurIPS 2021), written
here on scipy because the ``rliable`` package does not import with this project's pinned
pandas / arch versions:

* :func:`iqm` - interquartile mean over all runs x tasks (``scipy.stats.trim_mean(x, 0.25)``);
* :func:`stratified_bootstrap_ci` - percentile interval of a statistic when runs are resampled
  with replacement *within* each task (the task set itself is fixed);
* :func:`probability_of_improvement` - ``P(X > Y)`` per task as the Mann-Whitney ``U / (n m)``
  (ties count one half), averaged over tasks.

Paired comparisons (:func:`paired`, :func:`normalize_to_reference`) match the runs of two
settings by seed: the runs of one seed share the evaluation episodes, so the per-seed difference
removes the seed's luck from the comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np
from scipy import stats as _st

Interval = tuple[float, float]
NAN_INTERVAL: Interval = (float("nan"), float("nan"))


def t_interval(values: Sequence[float] | np.ndarray, level: float = 0.95) -> Interval:
    """Student-t interval of the mean: ``mean +- t_{(1+level)/2, n-1} s / sqrt(n)``.

    :param values: one value per seed (NaNs are dropped).
    :param level: coverage, e.g. 0.95.
    :return: ``(low, high)``; ``(nan, nan)`` for fewer than two values (no interval at n = 1).
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size < 2:
        return NAN_INTERVAL
    half = _st.t.ppf((1 + level) / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return float(x.mean() - half), float(x.mean() + half)


def t_pvalue(values: Sequence[float] | np.ndarray) -> float:
    """Two-sided p-value of the one-sample t-test "the mean is 0" (e.g. of per-seed paired
    differences).

    :param values: one value per seed (NaNs are dropped).
    :return: the p-value; NaN for fewer than two values or zero spread with mean 0.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size < 2:
        return float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(_st.ttest_1samp(x, 0.0).pvalue)


def holm(pvalues: Sequence[float], alpha: float = 0.05) -> np.ndarray:
    """Holm's step-down correction: which hypotheses to reject so that the chance of rejecting
    any true one stays at most ``alpha`` over the whole family.

    :param pvalues: one p-value per hypothesis (NaN: never rejected).
    :param alpha: family-wise error rate.
    :return: boolean array aligned with ``pvalues``.
    """
    p = np.asarray(pvalues, dtype=float)
    reject = np.zeros(p.size, dtype=bool)
    for rank, i in enumerate(np.argsort(np.where(np.isnan(p), np.inf, p))):
        if not p[i] <= alpha / (p.size - rank):
            break
        reject[i] = True
    return reject


def percentile_bootstrap_ci(
    values: Sequence[float] | np.ndarray, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> Interval:
    """Percentile bootstrap interval of the mean (kept to show, in the tests, why it is not used
    per setting: it under-covers at a few seeds).

    :param values: one value per seed.
    :param level: nominal coverage.
    :param n_boot: bootstrap resamples.
    :param seed: random seed of the resampling (results are reproducible).
    :return: ``(low, high)``; ``(nan, nan)`` for fewer than two values.
    """
    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return NAN_INTERVAL
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def iqm(values: Sequence[float] | np.ndarray | Sequence[Sequence[float]]) -> float:
    """Interquartile mean: the mean of the middle 50 % of all values (runs x tasks, flattened).

    :param values: scores, any shape, or a list of per-task arrays of different lengths.
    :return: ``scipy.stats.trim_mean(x, 0.25)``; NaN when empty.
    """
    x = _flatten(values)
    return float(_st.trim_mean(x, 0.25)) if x.size else float("nan")


def _flatten(values) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.astype(float).ravel()
    parts = [np.atleast_1d(np.asarray(v, dtype=float)).ravel() for v in values]
    return np.concatenate(parts) if parts else np.zeros(0)


def stratified_bootstrap_ci(
    tasks: Sequence[Sequence[float]],
    statistic: Callable[[list[np.ndarray]], float] = iqm,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> Interval:
    """Percentile interval of ``statistic`` under the stratified bootstrap (rliable's
    ``StratifiedBootstrap``): each resample draws, for every task, as many runs as that task has,
    with replacement from that task's runs.

    :param tasks: one array of run scores per task (lengths may differ).
    :param statistic: maps a list of per-task arrays to a number (default: :func:`iqm`).
    :param level: nominal coverage.
    :param n_boot: bootstrap resamples.
    :param seed: random seed of the resampling.
    :return: ``(low, high)``; ``(nan, nan)`` when a task has fewer than two runs: its score would
        never move under resampling, and the interval would be narrower than the data allow.
    """
    arrays = [np.asarray(t, dtype=float) for t in tasks]
    if not arrays or min(a.size for a in arrays) < 2:
        return NAN_INTERVAL
    rng = np.random.default_rng(seed)
    draws = [a[rng.integers(0, a.size, size=(n_boot, a.size))] for a in arrays]
    boot = np.array([statistic([d[i] for d in draws]) for i in range(n_boot)])
    alpha = (1 - level) / 2
    return float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha))


def probability_of_improvement(
    x_tasks: Sequence[Sequence[float]], y_tasks: Sequence[Sequence[float]]
) -> float:
    """``P(X > Y)``: for each task the Mann-Whitney ``U / (n m)`` of X's runs against Y's runs
    (a tie counts one half), averaged over tasks (rliable's probability of improvement).

    :param x_tasks: per task, the scores of algorithm X.
    :param y_tasks: per task (same order), the scores of algorithm Y.
    :return: a number in [0, 1]; NaN when no task has runs of both.
    """
    if len(x_tasks) != len(y_tasks):
        raise ValueError(f"{len(x_tasks)} tasks for X but {len(y_tasks)} for Y")
    per_task = []
    for xs, ys in zip(x_tasks, y_tasks, strict=True):
        x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
        if x.size and y.size:
            greater = (x[:, None] > y[None, :]).sum() + 0.5 * (x[:, None] == y[None, :]).sum()
            per_task.append(greater / (x.size * y.size))
    return float(np.mean(per_task)) if per_task else float("nan")


def probability_of_improvement_ci(
    x_tasks: Sequence[Sequence[float]],
    y_tasks: Sequence[Sequence[float]],
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> Interval:
    """Stratified-bootstrap interval of :func:`probability_of_improvement`: X's and Y's runs are
    resampled independently within each task.

    :return: ``(low, high)``; ``(nan, nan)`` when a task has fewer than two runs of X or of Y
        (one run would give e.g. the zero-width interval (1, 1)).
    """
    pairs = [
        (np.asarray(a, dtype=float), np.asarray(b, dtype=float))
        for a, b in zip(x_tasks, y_tasks, strict=True)
    ]
    if not pairs or min(min(a.size, b.size) for a, b in pairs) < 2:
        return NAN_INTERVAL
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot)
    for i in range(n_boot):
        xs = [a[rng.integers(0, a.size, a.size)] for a, _ in pairs]
        ys = [b[rng.integers(0, b.size, b.size)] for _, b in pairs]
        boot[i] = probability_of_improvement(xs, ys)
    alpha = (1 - level) / 2
    return float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha))


def paired(
    values: Mapping[Hashable, float], reference: Mapping[Hashable, float]
) -> tuple[list[Hashable], np.ndarray, np.ndarray]:
    """Match two settings' results by seed.

    :param values: ``{seed: return}`` of the setting under test.
    :param reference: ``{seed: return}`` of the reference (e.g. the same seed's dense run).
    :return: the common seeds with a finite value on both sides (sorted) and the two aligned
        arrays.
    """
    seeds = sorted(s for s in set(values) & set(reference)
                   if np.isfinite(values[s]) and np.isfinite(reference[s]))  # fmt: skip
    return (
        seeds,
        np.array([values[s] for s in seeds], dtype=float),
        np.array([reference[s] for s in seeds], dtype=float),
    )


def normalize_to_reference(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per-seed normalised return ``1 + (x - ref) / |ref|``.

    It equals ``x / ref`` when the reference return is positive and keeps "higher is better"
    when it is negative (Atari returns can be); 1 means "as good as the same seed's reference".
    NaN where the reference is exactly 0 (no scale to normalise by).

    :param values: returns of the setting under test, aligned with ``reference`` by seed.
    :param reference: the same seeds' reference returns.
    """
    x, ref = np.asarray(values, dtype=float), np.asarray(reference, dtype=float)
    scale = np.abs(ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(scale > 0, 1.0 + (x - ref) / np.where(scale > 0, scale, 1.0), np.nan)


def paired_difference(
    values: Mapping[Hashable, float], reference: Mapping[Hashable, float], level: float = 0.95
) -> dict[str, float]:
    """The paired (same-seed) difference ``values - reference`` with its Student-t interval.

    :return: ``n`` (common seeds), ``diff`` (mean difference), ``low`` / ``high`` (t interval of
        the mean difference, NaN at n < 2), ``ref_mean`` (the reference's mean over the common
        seeds) and ``normalized`` (mean of :func:`normalize_to_reference`).
    """
    seeds, x, ref = paired(values, reference)
    if not seeds:
        nan = float("nan")
        return {"n": 0, "diff": nan, "low": nan, "high": nan, "ref_mean": nan, "normalized": nan}
    d = x - ref
    low, high = t_interval(d, level)
    norm = normalize_to_reference(x, ref)
    return {
        "n": len(seeds),
        "diff": float(d.mean()),
        "low": low,
        "high": high,
        "ref_mean": float(ref.mean()),
        "normalized": float(np.nanmean(norm)) if np.isfinite(norm).any() else float("nan"),
    }


def coverage(
    interval: Callable[[np.ndarray], Interval],
    n: int,
    trials: int = 2000,
    seed: int = 0,
    level_mean: float = 0.0,
) -> float:
    """Fraction of ``trials`` samples of ``n`` standard-normal values (mean ``level_mean``) whose
    ``interval`` contains the true mean: a Monte-Carlo check of an interval's real coverage.

    :param interval: maps a sample to ``(low, high)``.
    :param n: sample size (seeds).
    :param trials: simulated studies.
    :param seed: random seed of the simulation.
    """
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(trials):
        lo, hi = interval(rng.normal(level_mean, 1.0, n))
        hits += lo <= level_mean <= hi
    return hits / trials


__all__ = [
    "NAN_INTERVAL",
    "coverage",
    "iqm",
    "normalize_to_reference",
    "paired",
    "paired_difference",
    "percentile_bootstrap_ci",
    "probability_of_improvement",
    "probability_of_improvement_ci",
    "holm",
    "t_pvalue",
    "stratified_bootstrap_ci",
    "t_interval",
]

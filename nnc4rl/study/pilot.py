"""Choosing a study's T from a dense pilot: where has the dense learning curve nearly stopped?

A pilot trains dense fp32 agents of an env far past any candidate ``T`` and evaluates them on a
fixed grid (every ``eval_freq`` env steps). For a candidate ``T``, the *late gain* is how much the
mean curve rises over the run's last 0.2 T, in units of its value at ``T``:

    late_gain(T) = (m(T) - m(0.8 T)) / |m(T)|

where ``m(t)`` is the seed-mean return smoothed over the evaluations in ``(t - 0.1 T, t]`` (one
evaluation of a few episodes is noisy). A curve has *nearly stopped improving* at ``T`` when the
late gain is below a tolerance (5 %). Compressed runs train ``1.2 T``; at a ``T`` where the dense
curve still rises, an unequal-length comparison flatters the compressed side, which is why every
verdict compares networks trained equally long.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PLATEAU_TOLERANCE = 0.05
WINDOW = 0.1  # smoothing window, in units of T


def mean_curve(curves: pd.DataFrame) -> pd.Series:
    """The seed-mean return per step of :func:`nnc4rl.study.results.load_curves` rows
    (index: step; only steps every seed has)."""
    per_seed = curves.pivot_table(index="step", columns="seed", values="return_mean")
    return per_seed.dropna().mean(axis=1).sort_index()


def smoothed(curve: pd.Series, t: int, T: int) -> float:
    """The mean of ``curve`` over the evaluations in ``(t - WINDOW * T, t]``."""
    window = curve[(curve.index > t - WINDOW * T) & (curve.index <= t)]
    return float(window.mean()) if len(window) else np.nan


def late_gain(curve: pd.Series, T: int) -> float:
    """``(m(T) - m(0.8 T)) / |m(T)|`` (module docstring); NaN if the curve does not reach ``T``."""
    if curve.empty or curve.index.max() < T:
        return np.nan
    end, start = smoothed(curve, T, T), smoothed(curve, int(round(0.8 * T)), T)
    return (end - start) / abs(end) if end else np.nan


def candidates(curve: pd.Series, step: int) -> list[int]:
    """Candidate ``T`` values: multiples of ``step`` up to the pilot's last evaluation."""
    last = int(curve.index.max()) if not curve.empty else 0
    return list(range(step, last + 1, step))


def plateau_table(curves: pd.DataFrame, step: int = 50_000,
                  tolerance: float = PLATEAU_TOLERANCE) -> pd.DataFrame:  # fmt: skip
    """One row per candidate ``T``: ``T``, ``return`` (smoothed seed mean at T), ``late_gain`` and
    ``stopped`` (late gain below ``tolerance``)."""
    curve = mean_curve(curves)
    rows = [{"T": T, "return": smoothed(curve, T, T), "late_gain": late_gain(curve, T)}
            for T in candidates(curve, step)]  # fmt: skip
    table = pd.DataFrame(rows, columns=["T", "return", "late_gain"])
    table["stopped"] = table["late_gain"] < tolerance
    return table


def first_plateau(table: pd.DataFrame) -> int | None:
    """The smallest ``T`` of :func:`plateau_table` where the curve has nearly stopped improving
    (``None``: it still improves at every candidate)."""
    hit = table[table["stopped"]]
    return int(hit["T"].iloc[0]) if len(hit) else None

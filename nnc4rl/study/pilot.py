"""Choosing a study's T from a dense pilot: where has the dense learning curve nearly stopped?

A pilot trains dense fp32 agents of an env far past any candidate ``T`` and evaluates them on a
fixed grid (every ``eval_freq`` env steps). For a candidate ``T``, the *late gain* is how much the
mean curve rises over the run's last 0.2 T, in units of its value at ``T``:

    late_gain(T) = (m(T) - m(0.8 T)) / |m(T)|

where ``m(t)`` is the seed-mean return smoothed over the evaluations in ``(t - 0.1 T, t]`` (one
evaluation of a few episodes is noisy). A noisy curve also pauses: on the shipped Hopper pilot the
late gain is under 5 % at 5e4 and negative at 1e5, and the return then doubles. So the *later
gain* says how much higher the curve still goes within the pilot,

    later_gain(T) = (max over evaluations t > T of m_T(t) - m(T)) / |m(T)|

(``m_T``: smoothed with T's window), and a curve has *nearly stopped improving* at ``T`` when both
are below a tolerance (5 %); at the pilot's last evaluation nothing later can confirm it, so no
plateau is found there. Compressed runs train ``1.2 T``; at a ``T`` where the dense
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


def later_gain(curve: pd.Series, T: int) -> float:
    """``(max_{t > T} m_T(t) - m(T)) / |m(T)|`` over the pilot's evaluations after ``T`` (module
    docstring); NaN if none comes after ``T``."""
    later = curve.index[curve.index > T]
    if curve.empty or curve.index.max() < T or not len(later):
        return np.nan
    end = smoothed(curve, T, T)
    top = max(smoothed(curve, int(t), T) for t in later)
    return (top - end) / abs(end) if end else np.nan


def candidates(curve: pd.Series, step: int) -> list[int]:
    """Candidate ``T`` values: multiples of ``step`` up to the pilot's last evaluation."""
    last = int(curve.index.max()) if not curve.empty else 0
    return list(range(step, last + 1, step))


def plateau_table(curves: pd.DataFrame, step: int = 50_000,
                  tolerance: float = PLATEAU_TOLERANCE) -> pd.DataFrame:  # fmt: skip
    """One row per candidate ``T``: ``T``, ``return`` (smoothed seed mean at T), ``late_gain``,
    ``later_gain`` and ``stopped`` (both below ``tolerance``; a NaN is not below)."""
    curve = mean_curve(curves)
    rows = [{"T": T, "return": smoothed(curve, T, T), "late_gain": late_gain(curve, T),
             "later_gain": later_gain(curve, T)} for T in candidates(curve, step)]  # fmt: skip
    table = pd.DataFrame(rows, columns=["T", "return", "late_gain", "later_gain"])
    table["stopped"] = (table["late_gain"] < tolerance) & (table["later_gain"] < tolerance)
    return table


def first_plateau(table: pd.DataFrame) -> int | None:
    """The smallest ``T`` of :func:`plateau_table` where the curve has nearly stopped improving
    (``None``: it still improves at every candidate)."""
    hit = table[table["stopped"]]
    return int(hit["T"].iloc[0]) if len(hit) else None


def eval_every(curves: pd.DataFrame) -> int:
    """The pilot's evaluation spacing in env steps."""
    steps = np.sort(curves["step"].unique())
    return int(np.min(np.diff(steps))) if len(steps) > 1 else int(steps.max())


def candidate_step(curves: pd.DataFrame) -> int:
    """The spacing of candidate ``T`` values: an eighth of the pilot's length, on its evaluation
    grid (at least one evaluation apart)."""
    every = eval_every(curves)
    return max(every, int(round(curves["step"].max() / 8 / every)) * every)


def slope(curve: pd.Series, T: int, per: int = 10_000) -> float:
    """Rise of the smoothed mean return over the last 0.2 T, per ``per`` env steps."""
    end, start = smoothed(curve, T, T), smoothed(curve, int(round(0.8 * T)), T)
    return (end - start) / (0.2 * T) * per


def _pct(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{100 * x:+.1f} %"


def pilot_reading(
    curves: pd.DataFrame, study_T: int | None = None, study_hours: float | None = None,
    tolerance: float = PLATEAU_TOLERANCE,
) -> list[str]:  # fmt: skip
    """Sentences on a pilot, each computed from its curves: the late gain per candidate ``T``,
    the first plateau, and how the study's ``T`` relates to it.

    :param curves: :func:`nnc4rl.study.results.load_curves` rows of one env's pilot runs.
    :param study_T: the ``T`` the profile's study of that env uses (``None``: none yet).
    :param study_hours: that study's estimated wall time (hours), said when ``T`` is below the
        plateau, where affordability is what chose it.
    """
    if curves.empty:
        return ["No pilot run is stored yet."]
    env, seeds = curves["env"].iloc[0], sorted(curves["seed"].unique())
    curve = mean_curve(curves)
    step = candidate_step(curves)
    table = plateau_table(curves, step, tolerance)
    out = [f"Pilot: dense fp32 on {env}, {len(seeds)} seed(s) ({', '.join(map(str, seeds))}), "
           f"evaluated every {eval_every(curves):,} env steps to {int(curve.index.max()):,}."]  # fmt: skip
    gains = "; ".join(f"{int(r.T):,}: {_pct(r.late_gain)} / {_pct(r.later_gain)}"
                      for r in table.itertuples())  # fmt: skip
    out.append("Late gain / later gain (rise of the seed-mean return over the last 0.2 T / its "
               f"highest point after T within the pilot, in % of its value at T): {gains}.")  # fmt: skip
    plateau = first_plateau(table)
    tol = f"{100 * tolerance:.0f} %"
    if plateau is None:
        out.append(f"At no candidate T up to {int(table['T'].max()):,} are both under {tol} "
                   "(the last has no later evaluation to confirm it): no plateau within the "
                   "pilot.")  # fmt: skip
    else:
        out.append(f"It has nearly stopped improving (late and later gain under {tol}) first at "
                   f"T = {plateau:,}.")  # fmt: skip
    if study_T is None:
        out.append(f"No study of this profile uses {env} yet.")
        return out
    if plateau is not None and study_T == plateau:
        why = "the first plateau"
    elif plateau is not None and study_T > plateau:
        why = f"past the first plateau ({plateau:,})"
    else:
        cost = f" (its runs: about {study_hours:.1f} h with 2 workers)" if study_hours else ""
        why = f"below the plateau: the largest T this machine affords{cost}"
    gain = late_gain(curve, study_T)
    if not np.isfinite(gain):
        where = ("beyond the pilot's last evaluation" if study_T > curve.index.max()
                 else "where the pilot's evaluations are too sparse for a late gain")  # fmt: skip
        out.append(f"The {env} study uses T = {study_T:,}, {why}, {where}.")
        return out
    out.append(f"The {env} study uses T = {study_T:,}, {why}; there the smoothed mean return is "
               f"{smoothed(curve, study_T, study_T):.0f} and still changes by {_pct(gain)} over "
               f"the last 0.2 T ({slope(curve, study_T):+.0f} per 10,000 env steps).")  # fmt: skip
    return out

"""Choosing T from a pilot's dense learning curves, on hand-computed curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnc4rl.study.pilot import (
    candidate_step,
    first_plateau,
    late_gain,
    later_gain,
    mean_curve,
    pilot_reading,
    plateau_table,
)


def _curves(fn, seeds=(0, 1), last=400_000, every=10_000) -> pd.DataFrame:
    steps = np.arange(every, last + 1, every)
    return pd.DataFrame([{"seed": s, "step": int(t), "return_mean": fn(t, s)}
                         for s in seeds for t in steps])  # fmt: skip


def test_late_gain_of_a_linear_curve_is_computed_by_hand():
    # m(t) = t / 1000 for both seeds; T = 100 000: the windows (90k, 100k] and (70k, 80k] hold
    # one evaluation each (the window is 0.1 T = 10k): (100 - 80) / 100 = 0.2
    curve = mean_curve(_curves(lambda t, s: t / 1000))
    assert late_gain(curve, 100_000) == pytest.approx(0.2)
    # T = 200 000: windows (180k, 200k] -> mean(190, 200) = 195; (140k, 160k] -> 155
    assert late_gain(curve, 200_000) == pytest.approx((195 - 155) / 195)
    assert np.isnan(late_gain(curve, 500_000))  # beyond the pilot


def test_the_first_plateau_is_where_the_late_gain_drops_below_the_tolerance():
    # rises linearly to 1000 at 150k, flat afterwards; seeds offset by +-10 (the mean is exact)
    table = plateau_table(_curves(lambda t, s: min(t, 150_000) / 150 + (10 if s else -10)))
    assert table["T"].tolist() == [50_000 * k for k in range(1, 9)]
    gains = dict(zip(table["T"], table["late_gain"], strict=True))
    assert gains[150_000] > 0.05 and gains[200_000] == pytest.approx(0.0)
    assert first_plateau(table) == 200_000


def _pausing(t, s):
    """Rises to 40 at 40k, pauses until 100k, rises again to 190 at 250k, flat afterwards."""
    if t <= 40_000:
        return t / 1000
    if t <= 100_000:
        return 40.0
    return 40 + (min(t, 250_000) - 100_000) / 1000


def test_a_pause_is_no_plateau_when_the_curve_rises_again_within_the_pilot():
    table = plateau_table(_curves(_pausing)).set_index("T")
    # T = 50k: m(50k) = m(40k) = 40 (windows of 5k hold one evaluation each): no late gain, but
    # the curve later reaches 190 (the smoothed maximum after 50k): (190 - 40) / 40
    assert table.loc[50_000, "late_gain"] == pytest.approx(0.0)
    assert table.loc[50_000, "later_gain"] == pytest.approx(3.75)
    assert not table.loc[50_000, "stopped"] and not table.loc[100_000, "stopped"]
    # T = 300k: m = mean(190, 190, 190) over (270k, 300k], m(240k) = mean(160, 170, 180) = 170
    assert table.loc[300_000, "late_gain"] == pytest.approx(20 / 190)
    # T = 350k: flat over (245k, 350k] and after it: the first plateau
    assert first_plateau(table.reset_index()) == 350_000
    # the pilot's last evaluation has nothing later to confirm a plateau
    assert np.isnan(later_gain(mean_curve(_curves(_pausing)), 400_000))
    assert not table.loc[400_000, "stopped"]


def test_a_curve_that_keeps_rising_has_no_plateau():
    assert first_plateau(plateau_table(_curves(lambda t, s: t / 100))) is None


def _env_curves(fn, **kw) -> pd.DataFrame:
    return _curves(fn, **kw).assign(env="Hopper-v4")


def test_the_reading_names_the_plateau_and_the_study_T():
    # flat from 150k: the first plateau is 200k (previous test); a study at 200k is "the plateau"
    curves = _env_curves(lambda t, s: min(t, 150_000) / 150)
    lines = pilot_reading(curves, study_T=200_000)
    assert lines[0] == ("Pilot: dense fp32 on Hopper-v4, 2 seed(s) (0, 1), evaluated every "
                        "10,000 env steps to 400,000.")  # fmt: skip
    assert "first at T = 200,000." in lines[2]
    assert "uses T = 200,000, the first plateau;" in lines[3]
    assert "still changes by +0.0 %" in lines[3]


def test_a_study_below_the_plateau_says_it_was_chosen_by_budget_with_the_slope():
    curves = _env_curves(lambda t, s: t / 100)  # rises forever: 1 per 100 steps
    lines = pilot_reading(curves, study_T=100_000, study_hours=14.2)
    assert "no plateau within the pilot" in lines[2]
    # T = 100k: m(T) = mean over (90k, 100k] = 1000, m(80k) = 800: +20 %, +100 per 10k steps
    assert (
        "uses T = 100,000, below the plateau: the largest T this machine affords (its runs: "
        "about 14.2 h with 2 workers); there the smoothed mean return is 1000 and still "
        "changes by +20.0 % over the last 0.2 T (+100 per 10,000 env steps)."
    ) in lines[3]
    assert pilot_reading(curves)[-1] == "No study of this profile uses Hopper-v4 yet."
    assert pilot_reading(curves.iloc[:0]) == ["No pilot run is stored yet."]


def test_candidates_are_an_eighth_of_the_pilot_on_its_grid():
    assert candidate_step(_curves(lambda t, s: 0.0)) == 50_000
    assert candidate_step(_curves(lambda t, s: 0.0, last=1000, every=100)) == 100

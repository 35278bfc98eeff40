"""Choosing T from a pilot's dense learning curves, on hand-computed curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nnc4rl.study.pilot import first_plateau, late_gain, mean_curve, plateau_table


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


def test_a_curve_that_keeps_rising_has_no_plateau():
    assert first_plateau(plateau_table(_curves(lambda t, s: t / 100))) is None

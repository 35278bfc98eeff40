"""Dead-unit removal (nnc4rl.export.dead_units): the outputs are those of the network it came from,
fp32 to float rounding and the integer path bit for bit (host C too; the M4 in test_mcu.py)."""

from __future__ import annotations

import numpy as np
import pytest

from nnc4rl.export import artifact_from_sb3, load_policy
from nnc4rl.export.bench import hopper_sized_sac
from nnc4rl.export.c_build import CPolicy, compile_shared
from nnc4rl.export.c_export import save_c
from nnc4rl.export.dead_units import remove_dead_units
from nnc4rl.export.integer import calibrate


@pytest.fixture(scope="module")
def sparse_actor():
    _, model = hopper_sized_sac(0.99)
    art = artifact_from_sb3(model, bits=8, info={"env": "Hopper-v4", "seed": 0})
    obs = np.random.default_rng(0).normal(size=(64, 11)).astype(np.float32) * 2.0
    return art, calibrate(art, obs), obs


def test_removal_keeps_fp32_and_integer_outputs(sparse_actor, tmp_path):
    art, int_art, obs = sparse_actor
    small, report = remove_dead_units(int_art)
    hidden = [la.rows for la in small.layers[:2]]
    assert hidden[0] < 256 and hidden[1] < 256, hidden
    assert sum(report.no_outgoing.values()) > 0 and sum(report.folded.values()) > 0, report
    assert report.nnz_removed == sum(la.nnz for la in art.layers) - sum(
        la.nnz for la in small.layers
    )
    ref = load_policy(int_art, integer=True)
    np.testing.assert_array_equal(load_policy(small, integer=True).accumulators(obs),
                                  ref.accumulators(obs))  # fmt: skip
    # the fp32 path moves by the int8 rounding of the folded constants: less than the integer
    # path's own distance from it
    fp32 = load_policy(int_art).outputs(obs)
    own = np.abs(ref.outputs(obs) - fp32).max()
    assert np.abs(load_policy(small).outputs(obs) - fp32).max() <= own + 1e-6
    c_path, _ = save_c(small, tmp_path / "small.c", integer=True)
    c = CPolicy(small, compile_shared(c_path, tmp_path / "small.so"), integer=True)
    np.testing.assert_array_equal(c.accumulators(obs), ref.accumulators(obs))
    again, second = remove_dead_units(small)  # a fixpoint: nothing left to remove
    assert second.nnz_removed == 0 and [la.rows for la in again.layers] == [
        la.rows for la in small.layers
    ]


def test_uncalibrated_removal_matches_fp32(sparse_actor):
    art, _, obs = sparse_actor
    small, report = remove_dead_units(art)
    assert report.nnz_removed > 0
    np.testing.assert_allclose(load_policy(small).outputs(obs), load_policy(art).outputs(obs),
                               atol=1e-5)  # fmt: skip


def test_cli_export_removes_dead_units(sparse_actor, tmp_path, capsys):
    """``nnc4rl export --remove-dead-units``: a smaller npz whose integer path is unchanged."""
    from nnc4rl.cli import main
    from nnc4rl.export import load_artifact, save_artifact

    _, int_art, obs = sparse_actor
    src = tmp_path / "policy.npz"
    full = save_artifact(int_art, src)
    out = tmp_path / "small.npz"
    assert main(["export", str(src), "--format", "npz", "--remove-dead-units",
                 "--out", str(out)]) == 0  # fmt: skip
    assert "dead units removed:" in capsys.readouterr().out
    assert out.stat().st_size < full
    small = load_artifact(out)
    np.testing.assert_array_equal(load_policy(small, integer=True).accumulators(obs),
                                  load_policy(int_art, integer=True).accumulators(obs))  # fmt: skip

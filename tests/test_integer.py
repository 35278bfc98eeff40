"""Full-integer inference: fixed-point requantization, numpy reference vs C bit for bit, closed
loop on the paired evaluation episodes, and the RAM/flash targets of the integer C export."""

from __future__ import annotations

import numpy as np
import pytest

from nnc4rl.core.envs import calibration_seeds, evaluation_seeds
from nnc4rl.export import (
    ArtifactError,
    artifact_from_sb3,
    load_artifact,
    load_policy,
    save_artifact,
)
from nnc4rl.export.bench import atari_dqn, hopper_sized_sac
from nnc4rl.export.c_build import CPolicy, compile_shared, footprint
from nnc4rl.export.c_export import save_c
from nnc4rl.export.closed_loop import calibrate_held_out, play
from nnc4rl.export.integer import QMAX, calibrate, integer_plan, quantize_multiplier

pytestmark = pytest.mark.xdist_group("integer")

_CACHE: dict[str, dict] = {}  # per process: xdist may tear module fixtures down between items


def test_quantize_multiplier_and_requantization_round_exactly():
    rng = np.random.default_rng(0)
    for real in np.concatenate([10 ** rng.uniform(-9, 3, 200), [1.0, 0.5, 2.0**-20]]):
        m, shift = quantize_multiplier(float(real))
        assert 2**30 <= m < 2**31 and 1 <= shift <= 62
        assert abs(m * 2.0**-shift - real) <= real * 2.0**-30
    # (acc * m + 2^(s-1)) >> s is round-half-up of acc * m / 2^s, computed exactly in int64
    acc = rng.integers(-(2**31), 2**31, 1000)
    m, shift = quantize_multiplier(0.00123)
    q = (acc * m + (1 << (shift - 1))) >> shift
    ref = np.array([(int(a) * m + (1 << (shift - 1))) // (1 << shift) for a in acc])
    np.testing.assert_array_equal(q, ref)


def _sac(tmp_path_factory) -> dict:
    if "sac" not in _CACHE:
        root = tmp_path_factory.mktemp("int_sac")
        _, model = hopper_sized_sac(0.98)
        art = artifact_from_sb3(model, bits=8, info={"env": "Hopper-v4", "seed": 0})
        int_art = calibrate_held_out(art, episodes=2)
        c_path, _ = save_c(int_art, root / "q.c", integer=True)
        _CACHE["sac"] = {"art": art, "int": int_art, "c_path": c_path,
                         "c": CPolicy(int_art, compile_shared(c_path, root / "q.so"),
                                      integer=True)}  # fmt: skip
    return _CACHE["sac"]


@pytest.fixture(scope="module")
def sac(tmp_path_factory):
    return _sac(tmp_path_factory)


def test_sac_integer_c_matches_numpy_bit_for_bit_and_fits(sac):
    int_art = sac["int"]
    # calibrated on held-out episodes, never on the evaluation's
    assert int_art.integer["calibration"]["seeds"] == calibration_seeds(0, 2)
    assert not set(calibration_seeds(0, 2)) & set(evaluation_seeds(0, 9_999))
    obs = play(load_policy(sac["art"]), sac["art"], 1, record=True)["observations"]
    obs = np.concatenate([obs, 5 * np.random.default_rng(0).normal(size=(20, 11))])  # clamps too
    ref = load_policy(int_art, integer=True)
    np.testing.assert_array_equal(sac["c"].accumulators(obs), ref.accumulators(obs))
    np.testing.assert_allclose(sac["c"].predict(obs)[0], ref.predict(obs)[0], atol=1e-6)
    # int8 activations stay close to the trained (fp32-activation) network on its own states
    err = np.abs(ref.predict(obs[:-20])[0] - load_policy(sac["art"]).predict(obs[:-20])[0])
    assert err.max() < 0.05, err.max()
    fp = footprint(sac["c_path"])  # host -Os object; the M4 numbers are in test_mcu.py
    # two int8 buffers of the widest layer and the observation's 11 int16 input codes
    assert fp["bss"] == 2 * 256 + 2 * 11
    assert fp["flash"] <= 8 * 1024, fp
    source = sac["c_path"].read_text()
    assert "float buf" not in source and "tanhf" in source  # float only at the interface
    assert int_art.integer["input_bits"] == 16 and "static int16_t obs_q[11];" in source


def _rewrite(src, dst, edit) -> None:
    """Copy an artifact with its JSON header edited."""
    import json

    with np.load(src) as z:
        header, blob = json.loads(z["header"].tobytes()), z["blob"]
    text = json.dumps(edit(header)).encode()
    np.savez_compressed(dst, header=np.frombuffer(text, np.uint8), blob=blob)


def test_an_artifact_calibrated_with_int8_input_codes_still_runs(sac, tmp_path):
    """``input_bits`` 8 (artifacts calibrated before int16 inputs): C equals numpy, the codes
    are int8, and they are coarser: the action error against the trained network grows."""
    import copy

    old = copy.deepcopy(sac["int"])
    old.integer.pop("input_bits")
    old.integer["input_scale"] = float(np.float32(old.integer["input_scale"] * 32767 / 127))
    save_artifact(old, tmp_path / "v3.npz")  # written as version 3 with input_bits 8
    assert load_artifact(tmp_path / "v3.npz").integer["input_bits"] == 8
    _rewrite(
        tmp_path / "v3.npz",
        tmp_path / "old.npz",
        lambda h: (
            h
            | {
                "version": 2,
                "integer": {k: v for k, v in h["integer"].items() if k != "input_bits"},
            }
        ),
    )
    old = load_artifact(tmp_path / "old.npz")  # a version-2 file, as written before input_bits
    assert "input_bits" not in old.integer
    c_path, _ = save_c(old, tmp_path / "old.c", integer=True)
    assert "static int8_t obs_q[11];" in c_path.read_text()
    c = CPolicy(old, compile_shared(c_path, tmp_path / "old.so"), integer=True)
    obs = play(load_policy(sac["art"]), sac["art"], 1, record=True)["observations"]
    ref = load_policy(old, integer=True)
    np.testing.assert_array_equal(c.accumulators(obs), ref.accumulators(obs))
    bad = copy.deepcopy(sac["int"])
    bad.integer["input_bits"] = 12
    with pytest.raises(ArtifactError, match="integer.input_bits=12 is invalid: one of 8, 16"):
        save_artifact(bad, tmp_path / "bad.npz")  # the writer refuses what the reader would
    assert not (tmp_path / "bad.npz").exists()
    _rewrite(tmp_path / "v3.npz", tmp_path / "bad.npz", lambda h: h | {
        "integer": h["integer"] | {"input_bits": 12}})  # fmt: skip
    with pytest.raises(ArtifactError, match="integer.input_bits=12 is invalid: one of 8, 16"):
        load_artifact(tmp_path / "bad.npz")
    _rewrite(tmp_path / "v3.npz", tmp_path / "v2_16.npz", lambda h: h | {"version": 2})
    with pytest.raises(ArtifactError, match="input_bits is present: format version 2 has none"):
        load_artifact(tmp_path / "v2_16.npz")
    trained = load_policy(sac["art"]).predict(obs)[0]
    err8 = np.abs(ref.predict(obs)[0] - trained).mean()
    err16 = np.abs(load_policy(sac["int"], integer=True).predict(obs)[0] - trained).mean()
    assert err16 < err8, (err16, err8)


def test_sac_integer_closed_loop_returns(sac):
    """The integer policy plays the trained network's paired evaluation episodes."""
    fp = play(load_policy(sac["art"]), sac["art"], 2)
    for policy in (load_policy(sac["int"], integer=True), sac["c"]):
        run = play(policy, sac["art"], 2)
        assert run["seeds"] == fp["seeds"] == [10_000, 10_001]
        np.testing.assert_allclose(run["returns"], fp["returns"], rtol=0.05)


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    if "cnn" not in _CACHE:
        from nnc4rl.core.envs import make_envs
        from nnc4rl.export.verify import record_observations

        root = tmp_path_factory.mktemp("int_cnn")
        _, model = atari_dqn(0.98, "cnn")
        art = artifact_from_sb3(model, bits=8)
        _, env = make_envs("PongNoFrameskip-v4")
        obs = record_observations(model, env, n=16, every=5, random_prob=0.5)
        env.close()
        int_art = calibrate(art, obs)
        c_path, _ = save_c(int_art, root / "q.c", integer=True)
        _CACHE["cnn"] = {"art": art, "int": int_art, "obs": obs, "c_path": c_path,
                         "c": CPolicy(int_art, compile_shared(c_path, root / "q.so"),
                                      integer=True)}  # fmt: skip
    return _CACHE["cnn"]


def test_nature_cnn_integer_uint8_frames_bit_exact_and_fits(cnn):
    int_art, obs = cnn["int"], cnn["obs"]
    assert obs.dtype == np.uint8 and int_art.integer["input_scale"] == np.float32(1 / 255)
    ref = load_policy(int_art, integer=True)
    np.testing.assert_array_equal(cnn["c"].accumulators(obs), ref.accumulators(obs))
    np.testing.assert_array_equal(cnn["c"].predict(obs)[0], ref.predict(obs)[0])
    q_fp = load_policy(cnn["art"]).outputs(obs)
    assert np.abs(ref.outputs(obs) - q_fp).max() < 0.05 * np.abs(q_fp).max()
    source = cnn["c_path"].read_text()
    assert "const uint8_t *obs" in source and "float buf" not in source  # frames straight in
    fp = footprint(cnn["c_path"])
    assert fp["flash"] <= 256 * 1024 and fp["ram"] <= 64 * 1024, fp
    plan = integer_plan(int_art)
    assert all(-QMAX <= lp.lo <= 0 for lp in plan.ops if hasattr(lp, "lo"))

"""The full-integer ONNX graph against the numpy integer reference: identical int8 codes except
at rounding ties (onnxruntime requantizes in float, the reference in fixed point), identical
accumulators and DQN greedy actions, SAC actions within a measured tolerance; the CLI path."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from nnc4rl.cli import main
from nnc4rl.export import ArtifactError, artifact_from_sb3, load_policy, save_artifact
from nnc4rl.export.bench import atari_dqn, hopper_sized_sac
from nnc4rl.export.closed_loop import calibrate_held_out, play
from nnc4rl.export.integer import integer_plan
from nnc4rl.export.onnx_export import (
    OnnxPolicy,
    _tie_check,
    input_codes_name,
    integer_agreement,
    save_onnx,
    to_onnx,
)

pytestmark = pytest.mark.xdist_group("onnx-integer")

_CACHE: dict[str, dict] = {}  # per process: xdist may tear module fixtures down between items
# SAC: a code that differs at a tie moves the action by a few 1e-4 of its range (measured: at
# most 4.8e-4 on 5700 perturbed Hopper observations); without one, only Tanh's rounding differs.
SAC_ACTION_ATOL = 5e-3
SAC_ACTION_ATOL_IDENTICAL = 1e-6


def _check_codes(report: dict) -> None:
    """Every rounded tensor: differences only at ties; where none, accumulators are exact."""
    for t in report["tensors"]:
        assert t["at_ties"] and t["max_code_diff"] <= 1, t
        assert t["differ"] <= 1e-3 * t["values"], t  # ties are rare
    assert report["accumulators_identical"]


@pytest.fixture(scope="module")
def sac(tmp_path_factory):
    """A Hopper-sized 98 %-sparse SAC actor calibrated on 2 paired evaluation episodes, the
    observations of those episodes, and its integer ONNX file."""
    if "sac" not in _CACHE:
        root = tmp_path_factory.mktemp("onnx_int_sac")
        _, model = hopper_sized_sac(0.98)
        art = artifact_from_sb3(model, bits=8, info={"env": "Hopper-v4", "seed": 0})
        int_art = calibrate_held_out(art, episodes=2)
        obs = play(load_policy(art), art, 2, record=True)["observations"]  # the calibration set
        save_onnx(int_art, root / "int.onnx", integer=True)
        _CACHE["sac"] = {"art": art, "int": int_art, "obs": obs, "path": root / "int.onnx"}
    return _CACHE["sac"]


def test_graph_is_integer_with_the_stored_scales(sac):
    model = to_onnx(sac["int"], integer=True)
    ops = {n.op_type for n in model.graph.node}
    assert {"MatMulInteger", "QuantizeLinear", "DequantizeLinear", "Clip"} <= ops
    assert not ops & {"Gemm", "Conv"}
    # the int16 input codes go through the one int32 MatMul; no float matmul anywhere
    (matmul,) = [n for n in model.graph.node if n.op_type == "MatMul"]
    (codes,) = [n for n in model.graph.node if n.output[0] == input_codes_name()]
    (flat,) = [n for n in model.graph.node if n.output[0] == matmul.input[0]]  # SB3's Flatten
    assert flat.input[0] == input_codes_name() and codes.op_type == "Cast"
    assert onnx.helper.get_attribute_value(codes.attribute[0]) == onnx.TensorProto.INT32
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    plan = integer_plan(sac["int"])
    assert inits["inv_input_scale"] == plan.inv_input_scale and inits["input_hi"] == 32767
    assert inits["s1_out"] == np.float32(sac["int"].ops[1]["act_scale"])
    assert inits["b1_int32"].dtype == np.int32 and inits["w1_int8"].dtype == np.int8
    assert "full-integer" in model.doc_string
    # the fp32-activation graph is unchanged: weight-only QDQ into Gemm
    fp = {n.op_type for n in to_onnx(sac["int"]).graph.node}
    assert "Gemm" in fp and not fp & {"MatMulInteger", "QuantizeLinear"}


def test_sac_integer_onnx_agrees_with_the_reference(sac):
    obs = sac["obs"]
    rng = np.random.default_rng(0)  # plus perturbed copies, so that rounding ties do occur
    more = np.repeat(obs, 20, axis=0) * (1 + 0.05 * rng.normal(size=(20 * len(obs), obs.shape[1])))
    for batch in (obs, np.concatenate([obs, more])):
        report = integer_agreement(sac["int"], batch)
        _check_codes(report)
        assert report["codes_identical"] >= 0.99, report
        assert report["action_max_abs_diff_identical"] <= SAC_ACTION_ATOL_IDENTICAL, report
        assert report["action_max_abs_diff"] <= SAC_ACTION_ATOL, report
    # the file on disk acts like the reference policy
    ref = load_policy(sac["int"], integer=True)
    actions, _ = OnnxPolicy(sac["int"], sac["path"]).predict(obs)
    np.testing.assert_allclose(actions, ref.predict(obs)[0], atol=SAC_ACTION_ATOL)


def test_sac_integer_onnx_closed_loop(sac):
    """The ONNX integer policy plays the paired evaluation episodes like the reference."""
    ref = play(load_policy(sac["int"], integer=True), sac["art"], 2)
    run = play(OnnxPolicy(sac["int"], sac["path"]), sac["art"], 2)
    assert run["seeds"] == ref["seeds"] and run["lengths"] == ref["lengths"]
    np.testing.assert_allclose(run["returns"], ref["returns"], rtol=1e-3)


def test_tie_check_flags_differences_away_from_ties():
    real = np.array([[2.5, 3.2, -1.5]])
    ref = np.floor(real + 0.5)  # half up, as the fixed-point reference: 3, 3, -1
    even = np.array([[2.0, 3.0, -2.0]])  # half to even, as onnxruntime
    report = _tie_check(even, ref, real)
    assert report["differ"] == 2 and report["at_ties"] and report["rows"].tolist() == [True]
    assert not _tie_check(np.array([[3.0, 4.0, -1.0]]), ref, real)["at_ties"]  # 3.2 -> 4: wrong
    assert not _tie_check(np.array([[1.0, 3.0, -1.0]]), ref, real)["at_ties"]  # off by two


@pytest.mark.parametrize("arch", ["cnn", "impala-authors"])
def test_atari_integer_onnx_greedy_actions_identical(arch, tmp_path):
    """Nature CNN and the paper's ResNet (residual adds in exact int64) on uint8 frames."""
    from nnc4rl.core.envs import make_envs
    from nnc4rl.export.integer import calibrate
    from nnc4rl.export.verify import record_observations

    _, model = atari_dqn(0.98, arch)
    art = artifact_from_sb3(model, bits=8)
    _, env = make_envs("PongNoFrameskip-v4")
    obs = record_observations(model, env, n=16, every=5, random_prob=0.5)
    env.close()
    int_art = calibrate(art, obs)
    report = integer_agreement(int_art, obs)
    _check_codes(report)
    assert report["greedy_agree"] == 1.0 and report["q_values_identical"], report
    graph = {n.op_type for n in to_onnx(int_art, integer=True).graph.node}
    assert "ConvInteger" in graph and not graph & {"Conv", "Gemm", "MatMul"}
    save_onnx(int_art, tmp_path / "q.onnx", integer=True)
    onnx_actions, _ = OnnxPolicy(int_art, tmp_path / "q.onnx").predict(obs)  # uint8 frames in
    np.testing.assert_array_equal(onnx_actions, load_policy(int_art, integer=True).predict(obs)[0])


def test_cli_integer_onnx_and_one_line_errors(sac, tmp_path, capsys):
    save_artifact(sac["int"], tmp_path / "int.npz")
    out = tmp_path / "int.onnx"
    assert main(["export", str(tmp_path / "int.npz"), "--format", "onnx", "--integer",
                 "--out", str(out)]) == 0  # fmt: skip
    assert "full-integer" in capsys.readouterr().out
    report = integer_agreement(sac["int"], sac["obs"])
    actions, _ = OnnxPolicy(sac["int"], out).predict(sac["obs"])
    np.testing.assert_allclose(actions, load_policy(sac["int"], integer=True).predict(sac["obs"])[0],
                               atol=max(report["action_max_abs_diff"], 1e-6))  # fmt: skip
    # an uncalibrated artifact that does not name its env cannot be calibrated: one line
    bare = sac["art"]
    bare_info, bare.info = bare.info, {}
    try:
        save_artifact(bare, tmp_path / "bare.npz")
    finally:
        bare.info = bare_info
    assert main(["export", str(tmp_path / "bare.npz"), "--format", "onnx", "--integer",
                 "--out", str(tmp_path / "x.onnx")]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err.startswith("nnc4rl export: error:") and "--env" in err and "\n" not in err
    assert not (tmp_path / "x.onnx").exists()
    with pytest.raises(ArtifactError, match="calibrate it first"):
        to_onnx(sac["art"], integer=True)

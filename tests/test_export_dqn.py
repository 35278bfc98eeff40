"""Deployment export of DQN Q-networks (Nature CNN and the paper's ResNet) on real Atari frames."""

from __future__ import annotations

import pytest
import torch

from nnc4rl.core.envs import make_envs
from nnc4rl.export import (
    artifact_from_path,
    load_policy,
    load_sb3_model,
    save_artifact,
    weights_into_sb3,
)
from nnc4rl.export.c_build import CPolicy, compile_shared
from nnc4rl.export.c_export import save_c
from nnc4rl.export.onnx_export import OnnxPolicy, save_onnx
from nnc4rl.export.verify import compare, episode_returns, record_observations
from nnc4rl.runs.runner import train
from nnc4rl.runs.spec import RunSpec

pytestmark = pytest.mark.xdist_group("export-dqn")


def _spec(arch: str) -> RunSpec:
    return RunSpec(
        algo="dqn",
        env="PongNoFrameskip-v4",
        arch=arch,
        steps=120,
        sparsity=0.9,
        quantize=True,
        threads=1,
        overrides={"learning_starts": 40, "eval_episodes": 1, "eval_freq": 100_000, "n_events": 5},
    )


def _exports(arch: str, root):
    spec = _spec(arch)
    train(spec, root / "run")
    art = artifact_from_path(root / "run")
    save_artifact(art, root / "q.npz")
    save_onnx(art, root / "q.onnx")
    c_path, _ = save_c(art, root / "c" / "q.c")
    policies = {
        "npz": load_policy(root / "q.npz"),
        "onnx": OnnxPolicy(art, root / "q.onnx"),
        "c": CPolicy(art, compile_shared(c_path, root / "c" / "q.so")),
    }
    model = load_sb3_model(root / "run" / "model.zip")
    _, env = make_envs(spec.env, spec.seed)
    obs = record_observations(model, env, n=24, every=7, random_prob=0.5)
    env.close()
    return {"spec": spec, "art": art, "model": model, "policies": policies, "obs": obs}


# Cached per process: pytest-xdist may tear module fixtures down between items of one module.
_CACHE: dict[str, dict] = {}


def _cached(arch: str, tmp_path_factory) -> dict:
    if arch not in _CACHE:
        _CACHE[arch] = _exports(arch, tmp_path_factory.mktemp(arch))
    return _CACHE[arch]


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    return _cached("cnn", tmp_path_factory)


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    return _cached("impala-authors", tmp_path_factory)  # the paper's ResNet


@pytest.mark.parametrize("fmt", ["npz", "onnx", "c"])
def test_nature_cnn_greedy_actions_match(cnn, fmt):
    result = compare(cnn["model"], cnn["policies"][fmt], cnn["obs"])
    assert result["argmax_agree"] == 1.0 and result["max_abs_output_diff"] < 1e-4, result


@pytest.mark.parametrize("fmt", ["npz", "onnx", "c"])
def test_resnet_greedy_actions_match(resnet, fmt):
    art = resnet["art"]
    ops = [op["op"] for op in art.ops]
    assert ops.count("add") == 6 and ops.count("maxpool") == 3  # 3 stages x 2 residual blocks
    result = compare(resnet["model"], resnet["policies"][fmt], resnet["obs"])
    assert result["argmax_agree"] == 1.0 and result["max_abs_output_diff"] < 1e-4, result


def test_nature_cnn_evaluation_returns_are_equal(cnn):
    """A whole Pong game with the artifact policy gives SB3's return, exactly.

    (ONNX and C are checked on recorded frames above; a game costs ~800 steps per policy.)
    """

    def make_env():
        return make_envs(cnn["spec"].env, cnn["spec"].seed)[1]

    reference = episode_returns(cnn["model"], make_env, 1)
    assert episode_returns(cnn["policies"]["npz"], make_env, 1) == reference


def test_resnet_integer_c_is_bit_exact(resnet, tmp_path):
    """The integer path through residual adds, max-pools and padded convs: C == numpy."""
    import numpy as np

    from nnc4rl.export.integer import IntegerPolicy, calibrate

    art = calibrate(resnet["art"], resnet["obs"])
    c_path, _ = save_c(art, tmp_path / "q.c", integer=True)
    c = CPolicy(art, compile_shared(c_path, tmp_path / "q.so"), integer=True)
    ref = IntegerPolicy(art)
    np.testing.assert_array_equal(c.accumulators(resnet["obs"]), ref.accumulators(resnet["obs"]))
    float_q = resnet["policies"]["npz"].outputs(resnet["obs"])
    assert np.abs(ref.outputs(resnet["obs"]) - float_q).max() < 0.05 * np.abs(float_q).max()


def test_cnn_weights_go_back_into_a_fresh_dqn_and_its_target(cnn):
    """Per-channel conv scales broadcast right; the target network gets the same weights."""
    from stable_baselines3 import DQN

    model = cnn["model"]
    _, env = make_envs(cnn["spec"].env, cnn["spec"].seed)
    fresh = DQN("CnnPolicy", env, device="cpu", buffer_size=1, policy_kwargs=model.policy_kwargs)
    env.close()
    weights_into_sb3(cnn["art"], fresh)
    trained = model.q_net.state_dict()
    for net in (fresh.q_net, fresh.q_net_target):
        assert all(torch.equal(trained[k], v) for k, v in net.state_dict().items())

"""Export of TD3 / DDPG / TQC actors and PPO / A2C action paths (npz / ONNX / C, fp32 and the
full-integer path) and their equivalence with the trained SB3 network, on real envs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, DDPG, PPO, TD3
from stable_baselines3.common.env_util import make_vec_env

from nnc4rl import CompressionCallback, TrainingPlan
from nnc4rl.export import (
    ArtifactError,
    artifact_from_path,
    load_artifact,
    load_policy,
    load_sb3_model,
    save_artifact,
    weights_into_sb3,
)
from nnc4rl.export.c_build import CPolicy, compile_shared
from nnc4rl.export.c_export import save_c
from nnc4rl.export.integer import calibrate
from nnc4rl.export.onnx_export import OnnxPolicy, integer_agreement, save_onnx
from nnc4rl.export.verify import compare, record_observations

pytestmark = pytest.mark.xdist_group("export-algos")

RELU = {"activation_fn": torch.nn.ReLU}


def _tqc(env):
    TQC = pytest.importorskip("sb3_contrib").TQC
    return TQC("MlpPolicy", env, learning_starts=50, batch_size=32, seed=0,
               policy_kwargs={"net_arch": [64, 64], "n_critics": 2})  # fmt: skip


# name: (constructor, env, T, head kind, tanh hidden layers)
CASES = {
    "td3": (lambda env: TD3("MlpPolicy", env, learning_starts=50, batch_size=32, seed=0,
                            policy_kwargs={"net_arch": [64, 64]}), "Pendulum-v1", 300, "box"),
    "ddpg": (lambda env: DDPG("MlpPolicy", env, learning_starts=50, batch_size=32, seed=0,
                              policy_kwargs={"net_arch": [64, 64]}), "Pendulum-v1", 300, "box"),
    "tqc": (_tqc, "Pendulum-v1", 300, "box"),
    "ppo": (lambda env: PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=2, seed=0,
                            policy_kwargs=RELU), "Pendulum-v1", 640, "clip"),
    "ppo-tanh": (lambda env: PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=2,
                                 seed=0), "Pendulum-v1", 640, "clip"),
    "a2c-discrete": (lambda env: A2C("MlpPolicy", env, n_steps=8, seed=0, policy_kwargs=RELU),
                     "CartPole-v1", 400, "argmax"),
}  # fmt: skip


@pytest.fixture(scope="module", params=list(CASES))
def exported(request, tmp_path_factory):
    make, env_id, T, head = CASES[request.param]
    root = tmp_path_factory.mktemp(request.param)
    model = make(make_vec_env(env_id, n_envs=1, seed=0))
    plan = TrainingPlan(T=T, final_sparsity=0.9, n_events=8, quantize=True)
    model.learn(plan.total_steps, callback=CompressionCallback(plan))
    model.save(root / "model.zip")
    loaded = load_sb3_model(root / "model.zip")  # the class is read from the file
    art = artifact_from_path(root / "model.zip", trust_pickle=True)  # written just above
    save_artifact(art, root / "policy.npz")
    save_onnx(art, root / "policy.onnx")
    c_path, _ = save_c(art, root / "c" / "policy.c")
    policies = {
        "npz": load_policy(root / "policy.npz"),
        "onnx": OnnxPolicy(art, root / "policy.onnx"),
        "c": CPolicy(art, compile_shared(c_path, root / "c" / "policy.so")),
    }
    env = make_vec_env(env_id, n_envs=1, seed=1)
    obs = record_observations(loaded, env, n=200, seed=1)
    env.close()
    return {"name": request.param, "model": loaded, "art": art, "head": head, "root": root,
            "policies": policies, "obs": obs, "env": env_id}  # fmt: skip


def test_the_file_names_its_algorithm_and_the_artifact_its_head(exported):
    name, model, art = exported["name"], exported["model"], exported["art"]
    assert type(model).__name__.lower() == name.split("-")[0]
    assert art.algo == name.split("-")[0] and art.head["kind"] == exported["head"]
    assert load_artifact(exported["root"] / "policy.npz").algo == art.algo
    assert art.sparsity() >= 0.9 - 1e-3
    if art.algo in ("ppo", "a2c"):  # the value branch does not ship
        assert [la.name for la in art.layers][-1] == "action_net"
        assert not any("value" in la.name for la in art.layers)


@pytest.mark.parametrize("fmt", ["npz", "onnx", "c"])
def test_exports_act_as_the_trained_network(exported, fmt):
    """Gaussian policies export the mean action, squashed ones the rescaled tanh, discrete
    ones the argmax: actions equal SB3's deterministic predict up to float rounding."""
    result = compare(exported["model"], exported["policies"][fmt], exported["obs"])
    if fmt != "onnx":  # the ONNX graph's outputs are env actions (rescaled / clipped) already
        assert result["max_abs_output_diff"] <= 1e-4, result
    if exported["head"] == "argmax":
        assert result["argmax_agree"] == 1.0, result
    else:
        assert result["max_abs_action_diff"] <= 1e-5, result


def test_weights_go_back_into_a_fresh_model_bit_for_bit(exported):
    model, art = exported["model"], exported["art"]
    fresh = load_sb3_model(exported["root"] / "model.zip")
    with torch.no_grad():
        for p in fresh.policy.parameters():
            p.zero_()
    weights_into_sb3(art, fresh)
    a, _ = model.predict(exported["obs"], deterministic=True)
    b, _ = fresh.predict(exported["obs"], deterministic=True)
    np.testing.assert_array_equal(a, b)
    if art.algo in ("td3", "ddpg"):  # the target actor is copied too
        t = dict(fresh.policy.actor_target.named_parameters())
        for k, v in fresh.policy.actor.named_parameters():
            assert torch.equal(v, t[k])


def test_integer_path_matches_its_reference_or_refuses_hidden_tanh(exported, tmp_path):
    art, obs = exported["art"], exported["obs"]
    if exported["name"] == "ppo-tanh":  # SB3's default activation for PPO: no integer path
        with pytest.raises(ArtifactError, match="hidden tanh activations"):
            calibrate(art, obs)
        return
    calibrated = calibrate(art, obs[:100])
    reference = load_policy(calibrated, integer=True)
    agreement = integer_agreement(calibrated, obs[100:])
    assert agreement["accumulators_identical"], agreement
    c_path, _ = save_c(calibrated, tmp_path / "int.c", integer=True)
    c_policy = CPolicy(calibrated, compile_shared(c_path, tmp_path / "int.so"), integer=True)
    ref_actions, _ = reference.predict(obs[100:])
    c_actions, _ = c_policy.predict(obs[100:])
    if exported["head"] == "argmax":
        np.testing.assert_array_equal(c_actions, ref_actions)
    else:
        np.testing.assert_allclose(c_actions, ref_actions, atol=1e-5)
    # the integer network stays close to the trained one (int8 activations)
    trained, _ = exported["model"].predict(obs[100:], deterministic=True)
    if exported["head"] != "argmax":
        span = exported["model"].action_space.high - exported["model"].action_space.low
        assert np.abs(ref_actions - trained).max() <= 0.1 * span.max()

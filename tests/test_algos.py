"""Every registered algorithm through the callback on a real env at a tiny T: masks held after
every optimizer step (target networks included), the plan's clock on ``num_timesteps`` (the final
sparsity reached exactly at 0.8 T, on-policy rollouts included), the saved model loads with the
plain SB3 class and is exactly the evaluated network, and sizes are measured from its tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, DDPG, PPO, SAC, TD3
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.env_util import make_vec_env

from nnc4rl import CompressionCallback, TrainingPlan, compressed_network
from nnc4rl.compress.algos import ALGORITHMS, algo_of, algo_of_keys
from nnc4rl.compress.measure import measure_model_zip
from nnc4rl.compress.quant import quantize_to_int


def _tqc():
    return pytest.importorskip("sb3_contrib").TQC


# (name, constructor, env, n_envs, T): T a multiple of the on-policy rollout, so 0.8 T is a step
# the clock passes; the off-policy ones start learning before pruning starts (0.2 T).
CASES = {
    "ppo-pendulum": (lambda env: PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=3,
                                     seed=0), "Pendulum-v1", 1, 640),
    "ppo-cartpole-2envs": (lambda env: PPO("MlpPolicy", env, n_steps=32, batch_size=32,
                                           n_epochs=4, seed=0), "CartPole-v1", 2, 640),
    "a2c-cartpole": (lambda env: A2C("MlpPolicy", env, n_steps=8, seed=0), "CartPole-v1", 1, 400),
    "td3-pendulum": (lambda env: TD3("MlpPolicy", env, learning_starts=50, batch_size=32,
                                     policy_kwargs={"net_arch": [64, 64]}, seed=0),
                     "Pendulum-v1", 1, 300),
    "ddpg-pendulum": (lambda env: DDPG("MlpPolicy", env, learning_starts=50, batch_size=32,
                                       policy_kwargs={"net_arch": [64, 64]}, seed=0),
                      "Pendulum-v1", 1, 300),
    "tqc-pendulum": (lambda env: _tqc()("MlpPolicy", env, learning_starts=50, batch_size=32,
                                        policy_kwargs={"net_arch": [64, 64], "n_critics": 2},
                                        seed=0), "Pendulum-v1", 1, 300),
}  # fmt: skip


class Watch(BaseCallback):
    """After the compression callback: checks the masks after every optimizer step (a post-step
    hook registered after the callback's own) and the plan's target at every env step."""

    def __init__(self, compression: CompressionCallback):
        super().__init__()
        self.c = compression
        self.pruned_steps = 0  # optimizer steps taken while some weight was pruned
        self.sparsity_at: dict[int, float] = {}

    def _init_callback(self) -> None:
        self.c.network.optimizer.register_step_post_hook(self._after_step)

    def _held(self) -> None:
        net, masks = self.c.network, self.c.masks.masks
        for mask, layer in zip(masks, net.layers, strict=True):
            assert (layer.weight[~mask] == 0).all(), "an optimizer step regrew a pruned weight"
        for mask, layer in zip(masks, net.mirrors, strict=False):
            assert (layer.weight[~mask] == 0).all(), "the target network lost a zero"

    def _after_step(self, optimizer, args, kwargs) -> None:
        if not self.c.finalized:
            self._held()
            self.pruned_steps += int(self.c.masks.sparsity > 0)

    def _on_step(self) -> bool:
        self._held()
        step = self.num_timesteps
        assert self.c.masks.sparsity == self.c.plan.sparsity_at(step)
        self.sparsity_at[step] = self.c.masks.sparsity
        return True


@pytest.fixture(scope="module", params=list(CASES))
def trained(request, tmp_path_factory):
    make, env_id, n_envs, T = CASES[request.param]
    model = make(make_vec_env(env_id, n_envs=n_envs, seed=0))
    plan = TrainingPlan(T=T, final_sparsity=0.9, n_events=8, quantize=True)
    compression = CompressionCallback(plan)
    watch = Watch(compression)
    model.learn(plan.total_steps, callback=CallbackList([compression, watch]))
    path = tmp_path_factory.mktemp(request.param) / "model.zip"
    model.save(path)
    return request.param, model, plan, compression, watch, path


def test_masks_hold_after_every_optimizer_step(trained):
    _, _, _, compression, watch, _ = trained
    assert compression.finalized
    assert watch.pruned_steps >= 5  # many optimizer steps saw pruned weights (PPO's epochs too)


def test_final_sparsity_is_reached_exactly_at_0_8_T(trained):
    _, model, plan, _, watch, _ = trained
    end = int(plan.pruning_end)
    assert watch.sparsity_at[end] == plan.final_sparsity
    earlier = [s for t, s in watch.sparsity_at.items() if t < end]
    assert max(earlier) < plan.final_sparsity
    assert model.num_timesteps >= plan.total_steps


def test_saved_model_loads_with_plain_sb3_and_is_the_evaluated_network(trained):
    name, model, _, _, _, path = trained
    algo_class = type(model)
    loaded = algo_class.load(path, device="cpu")
    live, saved = model.policy.state_dict(), loaded.policy.state_dict()
    assert live.keys() == saved.keys()
    for key in live:
        assert torch.equal(live[key], saved[key]), key
    obs = np.stack([model.observation_space.sample() for _ in range(16)])
    a, _ = model.predict(obs, deterministic=True)
    b, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(a, b)
    assert algo_of(loaded).class_name == algo_class.__name__


def test_sizes_are_measured_from_the_saved_tensors_on_the_deployed_path(trained):
    name, model, plan, compression, _, path = trained
    info = algo_of(model)
    measured = measure_model_zip(path, bits=8, algo=info.name)
    # the keys alone recognise the layout (SAC/TQC, TD3/DDPG and PPO/A2C share one)
    assert measure_model_zip(path, bits=8)["network_sha256"] == measured["network_sha256"]
    assert measured["measured_sparsity"] >= plan.final_sparsity - 1e-3
    assert measured["quantization"]["max_offgrid"] < 1e-3
    assert measured["quantization"]["max_levels"] <= 255
    net = compressed_network(model)
    deployed = {f"{net.prefix}{n}.weight" for n in net.names} - {
        f"{info.prefix}{n}.weight" for n in info.not_deployed
    }
    assert set(measured["layer_sparsity"]) == deployed
    if info.on_policy:  # the value branch is not deployed and stays dense
        assert not any("value" in k for k in measured["layer_sparsity"])
        value = model.policy.mlp_extractor.value_net[0].weight
        assert (value != 0).float().mean() > 0.99
    for layer in net.layers:  # every compressed weight on its 8-bit grid
        codes, scale = quantize_to_int(layer.weight, 8, False)
        torch.testing.assert_close(layer.weight, codes.float() * scale, rtol=0, atol=1e-7)


def test_registry_names_every_algorithm_once():
    assert set(ALGORITHMS) == {"sac", "tqc", "td3", "ddpg", "dqn", "ppo", "a2c"}
    ppo = PPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16)
    assert algo_of_keys(ppo.policy.state_dict()).on_policy
    sac = SAC("MlpPolicy", "Pendulum-v1", buffer_size=1)
    assert algo_of_keys(sac.policy.state_dict()).head == "squash"

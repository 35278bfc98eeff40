"""SB3 integration: masks survive optimizer steps and target updates, save/load, resume, n_envs."""

import pytest
import torch
from stable_baselines3 import DQN, SAC
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from nnc4rl import CompressionCallback, TrainingPlan, compressed_network
from nnc4rl.quant import quantize_to_int


class MaskWatch(BaseCallback):
    """Runs after CompressionCallback at every env step, i.e. after the previous train()."""

    def __init__(self, compression: CompressionCallback):
        super().__init__()
        self.compression = compression
        self.checks = 0

    def _on_step(self) -> bool:
        net = self.compression.network
        for mask, layer in zip(self.compression.masks.masks, net.layers, strict=True):
            assert (layer.weight[~mask] == 0).all(), "an optimizer step regrew a pruned weight"
        for mask, layer in zip(self.compression.masks.masks, net.mirrors, strict=False):
            assert (layer.weight[~mask] == 0).all(), "the target network has a pruned weight"
        self.checks += int(any((~m).any() for m in self.compression.masks.masks))
        return True


def test_sac_masks_survive_adam_steps_and_final_model_is_compressed():
    model = SAC("MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=32, seed=0)
    plan = TrainingPlan(total_timesteps=400, final_sparsity=0.9, n_events=20, quantize=True)
    compression = CompressionCallback(plan)
    watch = MaskWatch(compression)
    model.learn(plan.total_steps, callback=CallbackList([compression, watch]))
    assert watch.checks > 100  # pruned weights existed during many gradient steps
    assert compression.finalized
    net = compressed_network(model)
    assert [type(m).__name__ for m in net.layers] == ["Linear"] * 4  # plain layers again
    zeros = sum(int((m.weight == 0).sum()) for m in net.layers)
    assert zeros / sum(m.weight.numel() for m in net.layers) >= 0.9 - 4 / 66_000
    for layer in net.layers:
        codes, scale = quantize_to_int(layer.weight, 8, False)
        torch.testing.assert_close(layer.weight, codes.float() * scale, rtol=0, atol=1e-7)
        assert torch.unique(codes).numel() <= 255
    # critics stay dense fp32
    critic = model.critic.qf0[0].weight
    assert (critic != 0).float().mean() > 0.99


def test_dqn_target_network_carries_the_zeros():
    model = DQN(
        "MlpPolicy",
        "CartPole-v1",
        learning_starts=50,
        target_update_interval=25,
        train_freq=1,
        batch_size=16,
        seed=0,
    )
    plan = TrainingPlan(total_timesteps=500, final_sparsity=0.8, n_events=10, quantize=True)
    compression = CompressionCallback(plan, distribution="global")
    watch = MaskWatch(compression)
    model.learn(plan.total_steps, callback=CallbackList([compression, watch]))
    assert watch.checks > 100
    online = compressed_network(model).layers
    target = compressed_network(model).mirrors
    for a, b in zip(online, target, strict=True):
        assert (b.weight[a.weight == 0] == 0).all()
        assert type(b).__name__ == "Linear"  # fake quantization baked into the target too


def test_save_load_round_trip_keeps_zeros_and_resume_keeps_the_mask(tmp_path):
    model = SAC("MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=32, seed=1)
    plan = TrainingPlan(total_timesteps=600, final_sparsity=0.95, n_events=10)
    # stop in the fine-tuning phase, save, load, and finish training from the checkpoint
    model.learn(500, callback=CompressionCallback(plan))
    model.save(tmp_path / "mid")
    before = {k: v.clone() for k, v in model.actor.state_dict().items()}
    loaded = SAC.load(tmp_path / "mid", env=model.get_env())
    for k, v in loaded.actor.state_dict().items():
        assert torch.equal(v, before[k])
    masks_before = [m.weight != 0 for m in compressed_network(loaded).layers]
    loaded.learn(100, callback=CompressionCallback(plan), reset_num_timesteps=False)
    assert loaded.num_timesteps == 600
    masks_after = [m.weight != 0 for m in compressed_network(loaded).layers]
    for a, b in zip(masks_before, masks_after, strict=True):
        assert torch.equal(a, b)
    # the weights did train during the resumed run
    w0 = compressed_network(loaded).layers[1].weight
    assert not torch.equal(w0, before["latent_pi.2.weight"])


def test_n_envs_above_one_uses_the_num_timesteps_clock():
    from stable_baselines3.common.env_util import make_vec_env

    model = DQN("MlpPolicy", make_vec_env("CartPole-v1", n_envs=3, seed=0), learning_starts=40,
                train_freq=2, seed=0)  # fmt: skip
    plan = TrainingPlan(total_timesteps=300, final_sparsity=0.7, n_events=30)
    compression = CompressionCallback(plan)
    model.learn(plan.total_steps, callback=compression)
    assert model.num_timesteps >= 300
    assert compression.measured_sparsity() == pytest.approx(0.7, abs=4 / 5000)


def test_unsupported_model_is_rejected():
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32)
    with pytest.raises(TypeError, match="PPO is not supported"):
        model.learn(64, callback=CompressionCallback(TrainingPlan(total_timesteps=64)))

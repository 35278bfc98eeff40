"""SB3 integration: masks survive optimizer steps and target updates, save/load, resume, n_envs."""

import pytest
import torch
from stable_baselines3 import DQN, SAC
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from nnc4rl import CompressionCallback, TrainingPlan, compressed_network
from nnc4rl.compress.quant import quantize_to_int


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
    plan = TrainingPlan(T=400, final_sparsity=0.9, n_events=20, quantize=True)
    compression = CompressionCallback(plan)
    watch = MaskWatch(compression)
    model.learn(plan.total_steps, callback=CallbackList([compression, watch]))
    assert watch.checks > 100  # pruned weights existed during many gradient steps
    assert compression.finalized
    net = compressed_network(model)
    assert [type(m).__name__ for m in net.layers] == ["Linear"] * 4  # plain layers again
    deployed = [m for i, m in enumerate(net.layers) if i not in net.tied]  # log_std is tied
    zeros = sum(int((m.weight == 0).sum()) for m in deployed)
    assert zeros / sum(m.weight.numel() for m in deployed) >= 0.9 - 4 / 66_000
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
    plan = TrainingPlan(T=500, final_sparsity=0.8, n_events=10, quantize=True)
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
    plan = TrainingPlan(T=600, final_sparsity=0.95, n_events=10)
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
    plan = TrainingPlan(T=300, final_sparsity=0.7, n_events=30)
    compression = CompressionCallback(plan)
    model.learn(plan.total_steps, callback=compression)
    assert model.num_timesteps >= 300
    assert compression.measured_sparsity() == pytest.approx(0.7, abs=4 / 5000)


def test_unsupported_model_is_rejected_naming_the_supported_ones():
    sb3_contrib = pytest.importorskip("sb3_contrib")

    model = sb3_contrib.RecurrentPPO("MlpLstmPolicy", "CartPole-v1", n_steps=64, batch_size=32)
    with pytest.raises(TypeError, match="RecurrentPPO is not supported: use one of SAC, TQC") as e:
        model.learn(64, callback=CompressionCallback(TrainingPlan(T=64)))
    assert "\n" not in str(e.value) and "PPO, A2C" in str(e.value)


class ScheduleWatch(BaseCallback):
    """After the compression callback at every env step: the network holds exactly what
    ``plan.sparsity_at(step)`` asks, layer by layer, and the logger carries it."""

    def __init__(self, compression: CompressionCallback, distribution: str):
        super().__init__()
        self.compression, self.distribution = compression, distribution
        self.targets: set[float] = set()

    def _on_step(self) -> bool:
        from nnc4rl.compress.pruning import layer_keep_counts

        c, step = self.compression, self.num_timesteps
        target = c.plan.sparsity_at(step)
        assert c.masks.sparsity == target
        assert self.logger.name_to_value["compression/sparsity"] == target
        net = c.network
        free = [i for i in range(len(net.layers)) if i not in net.tied]
        keeps = layer_keep_counts([net.layers[i].weight.shape for i in free], target,
                                  self.distribution)  # fmt: skip
        for i, keep in zip(free, keeps, strict=True):
            assert int((net.layers[i].weight != 0).sum()) == keep, (step, i)
        for i, anchor in net.tied.items():  # SAC log_std at mu's density
            density = float((net.layers[anchor].weight != 0).float().mean())
            assert int((net.layers[i].weight != 0).sum()) == round(
                density * net.layers[i].weight.numel()
            )
        self.targets.add(target)
        return True


def test_sac_callback_follows_the_plan_step_by_step_over_the_deployed_path():
    model = SAC("MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=32, seed=2)
    plan = TrainingPlan(T=300, final_sparsity=0.9, n_events=15)
    compression = CompressionCallback(plan)
    watch = ScheduleWatch(compression, "erdos_renyi")
    model.learn(plan.total_steps, callback=CallbackList([compression, watch]))
    assert len(watch.targets) == plan.n_events + 1  # every event seen, the final one included
    net = compression.network
    assert (
        net.names[list(net.tied)[0]] == "log_std" and net.names[list(net.tied.values())[0]] == "mu"
    )
    deployed = [m for i, m in enumerate(net.layers) if i not in net.tied]
    zeros = sum(int((m.weight == 0).sum()) for m in deployed)
    assert zeros / sum(m.weight.numel() for m in deployed) == pytest.approx(0.9, abs=3 / 70_000)


def test_dqn_cnn_callback_follows_the_plan_step_by_step_with_erdos_renyi_kernel():
    import ale_py
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    env = VecFrameStack(make_atari_env("PongNoFrameskip-v4", n_envs=1, seed=0), 4)
    model = DQN("CnnPolicy", env, learning_starts=30, buffer_size=200, batch_size=8, train_freq=4,
                target_update_interval=40, seed=0)  # fmt: skip
    plan = TrainingPlan(T=150, final_sparsity=0.95, n_events=6)
    compression = CompressionCallback(plan)
    watch = ScheduleWatch(compression, "erdos_renyi")
    model.learn(plan.total_steps, callback=CallbackList([compression, watch]))
    assert len(watch.targets) == plan.n_events + 1
    shapes = [m.weight.dim() for m in compression.network.layers]
    assert shapes.count(4) == 3  # the Nature CNN's convs were pruned by Erdos-Renyi-kernel


def test_second_learn_after_finalize_is_refused():
    model = SAC("MlpPolicy", "Pendulum-v1", learning_starts=20, batch_size=16, seed=0)
    plan = TrainingPlan(T=60, final_sparsity=0.5, n_events=5, quantize=True)
    compression = CompressionCallback(plan)
    model.learn(plan.total_steps, callback=compression)
    assert compression.finalized
    with pytest.raises(RuntimeError, match="already finalized"):
        model.learn(10, callback=compression, reset_num_timesteps=False)


def test_resume_with_a_reset_clock_is_refused(tmp_path):
    model = SAC("MlpPolicy", "Pendulum-v1", learning_starts=20, batch_size=16, seed=0)
    plan = TrainingPlan(T=200, final_sparsity=0.8, n_events=5)
    model.learn(150, callback=CompressionCallback(plan))
    model.save(tmp_path / "mid")
    loaded = SAC.load(tmp_path / "mid", env=model.get_env())
    with pytest.raises(RuntimeError, match="reset_num_timesteps=False"):
        loaded.learn(50, callback=CompressionCallback(plan))  # SB3's default resets the clock


def test_on_resume_the_measured_zeros_win_over_the_plan(tmp_path):
    """A checkpoint taken at an event step before the event was applied (e.g. by a callback that
    runs first) holds fewer zeros than the plan says: resuming applies the event, never skips it."""
    model = SAC("MlpPolicy", "Pendulum-v1", learning_starts=20, batch_size=16, seed=0)
    plan = TrainingPlan(T=200, final_sparsity=0.9, n_events=5)
    last_event = plan.event_steps()[-1]
    model.learn(last_event - 1, callback=CompressionCallback(plan))
    before = plan.sparsity_at(last_event - 1)
    model.save(tmp_path / "mid")
    loaded = SAC.load(tmp_path / "mid", env=model.get_env())
    loaded.num_timesteps = last_event  # the clock says the final event is done; the zeros do not
    compression = CompressionCallback(plan)
    loaded.learn(plan.T - last_event, callback=compression, reset_num_timesteps=False)
    assert before < plan.final_sparsity
    assert compression.measured_sparsity() == pytest.approx(plan.final_sparsity, abs=3 / 70_000)


def test_learn_that_stops_before_the_plan_ends_warns_in_one_line():
    """The measured silent no-op: ``learn(plan.T)`` of a quantized plan ended without QAT."""
    from nnc4rl.compress.callback import PlanNotFinishedWarning

    model = SAC("MlpPolicy", "Pendulum-v1", learning_starts=20, batch_size=16, seed=0,
                policy_kwargs={"net_arch": [16, 16]})  # fmt: skip
    plan = TrainingPlan(T=200, final_sparsity=0.5, n_events=5, quantize=True)
    cb = CompressionCallback(plan)
    with pytest.warns(PlanNotFinishedWarning) as record:
        model.learn(plan.T, callback=cb)
    (w,) = record
    assert str(w.message) == (
        "learn stopped at step 200 of the plan's 240: 8-bit QAT has not run (the weights are "
        "off its grid); continue with model.learn(40, callback=<this callback>, "
        "reset_num_timesteps=False)"
    )
    model.learn(40, callback=cb, reset_num_timesteps=False)  # as it says: then it is finalized
    assert cb.finalized


def test_a_dense_model_whose_clock_is_past_the_plan_is_refused():
    """A trained model continued with ``reset_num_timesteps=False`` would be pruned in one shot."""
    model = SAC("MlpPolicy", "Pendulum-v1", learning_starts=20, batch_size=16, seed=0,
                policy_kwargs={"net_arch": [16, 16]})  # fmt: skip
    model.learn(300)  # a dense model at step 300
    plan = TrainingPlan(T=200, final_sparsity=0.9, n_events=10, quantize=True)
    with pytest.raises(RuntimeError, match=r"^the model's clock \(num_timesteps=300\) is past 10 "
                                           r"of the plan's 10 pruning events"):  # fmt: skip
        model.learn(100, callback=CompressionCallback(plan), reset_num_timesteps=False)
    # the same model with its clock reset: the plan starts at 0 and runs to the end
    cb = CompressionCallback(plan)
    model.learn(plan.total_steps, callback=cb)
    assert cb.finalized

"""TensorBoard comes with the project: a model made with ``tensorboard_log`` gets the callback's
``compression/*`` scalars in its event file."""

from __future__ import annotations

from stable_baselines3 import SAC
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from nnc4rl import CompressionCallback, TrainingPlan


def test_the_compression_scalars_reach_the_event_file(tmp_path):
    model = SAC("MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=32, seed=0,
                tensorboard_log=str(tmp_path), policy_kwargs={"net_arch": [32, 32]})  # fmt: skip
    plan = TrainingPlan(T=300, final_sparsity=0.9, n_events=10, quantize=True)
    # Pendulum episodes are 200 steps: log every 100 steps so the pruning ramp gets points
    model.learn(plan.total_steps, callback=CompressionCallback(plan), log_interval=1)
    (events,) = tmp_path.rglob("events.out.tfevents.*")
    acc = EventAccumulator(str(events.parent))
    acc.Reload()
    assert "compression/sparsity" in acc.Tags()["scalars"]
    sparsity = [e.value for e in acc.Scalars("compression/sparsity")]
    assert sparsity[-1] > 0.85 and sparsity == sorted(sparsity)  # the ramp, never down


def test_nnc4rl_train_tensorboard_logs_sparsity_and_phase_as_scalars(tmp_path):
    from nnc4rl.cli import main

    tb = tmp_path / "tb"
    # SAC dumps its log every 4 episodes (800 steps of Pendulum): the dump at 800 is in QAT
    code = main(["train", "--algo", "sac", "--env", "Pendulum-v1", "--steps", "700",
                 "--sparsity", "0.5", "--quantize", "--set", "learning_starts=50",
                 "--set", "batch_size=16", "--set", "policy_kwargs.net_arch=[16,16]",
                 "--set", "eval_freq=1000", "--set", "eval_episodes=1", "--set", "n_events=5",
                 "--out", str(tmp_path / "run"), "--tensorboard", str(tb), "--no-progress"])  # fmt: skip
    assert code == 0
    scalars: dict[str, list[float]] = {}
    for events in tb.rglob("events.out.tfevents.*"):  # stage 1 and the QAT stage
        acc = EventAccumulator(str(events.parent))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
    assert {"compression/sparsity", "compression/phase_index"} <= set(scalars)
    assert max(scalars["compression/phase_index"]) == 3  # QAT, the last phase, is drawn

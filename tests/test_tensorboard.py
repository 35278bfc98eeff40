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

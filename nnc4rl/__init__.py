"""nnc4rl: pruning and quantization-aware training for Stable-Baselines3 agents.

The reproducible companion of Ivanov et al., "Neural network compression for reinforcement
learning tasks", Scientific Reports 15, 9718 (2025).

Typical use on your own agent::

    from stable_baselines3 import SAC
    from nnc4rl import CompressionCallback, TrainingPlan

    model = SAC("MlpPolicy", "Hopper-v4")
    plan = TrainingPlan(total_timesteps=100_000, final_sparsity=0.98, quantize=True)
    model.learn(plan.total_steps, callback=CompressionCallback(plan))
    model.save("hopper_98_int8")
"""

from nnc4rl.measure import measure_model_zip, measure_state_dict
from nnc4rl.plan import Phase, TrainingPlan
from nnc4rl.pruning import MaskSet, erdos_renyi_densities, magnitude_masks
from nnc4rl.quant import fake_quantize, post_training_quantize
from nnc4rl.sb3 import CompressionCallback, compressed_network
from nnc4rl.size import network_size

__version__ = "0.1.0"

__all__ = [
    "CompressionCallback",
    "MaskSet",
    "Phase",
    "TrainingPlan",
    "compressed_network",
    "erdos_renyi_densities",
    "fake_quantize",
    "magnitude_masks",
    "measure_model_zip",
    "measure_state_dict",
    "network_size",
    "post_training_quantize",
]

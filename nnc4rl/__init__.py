"""nnc4rl: pruning and quantization-aware training for Stable-Baselines3 agents.

The reproducible companion of Ivanov et al., "Neural network compression for reinforcement
learning tasks", Scientific Reports 15, 9718 (2025).

Typical use on your own agent::

    from stable_baselines3 import SAC
    from nnc4rl import CompressionCallback, TrainingPlan

    model = SAC("MlpPolicy", "Hopper-v4")
    plan = TrainingPlan(T=100_000, final_sparsity=0.98, quantize=True)
    model.learn(plan.total_steps, callback=CompressionCallback(plan))
    model.save("hopper_98_int8")
"""

from importlib import import_module
from typing import Any

# Names are imported on first use (PEP 562): reading a run store (``nnc4rl.results``,
# ``nnc4rl.schema``) must not pull in torch, Stable-Baselines3 or gymnasium.
_LAZY = {
    "measure_model_zip": "nnc4rl.measure",
    "measure_state_dict": "nnc4rl.measure",
    "Phase": "nnc4rl.plan",
    "TrainingPlan": "nnc4rl.plan",
    "MaskSet": "nnc4rl.pruning",
    "erdos_renyi_densities": "nnc4rl.pruning",
    "magnitude_masks": "nnc4rl.pruning",
    "fake_quantize": "nnc4rl.quant",
    "post_training_quantize": "nnc4rl.quant",
    "CompressionCallback": "nnc4rl.sb3",
    "compressed_network": "nnc4rl.sb3",
    "network_size": "nnc4rl.size",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nnc4rl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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

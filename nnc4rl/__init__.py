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

# Names are imported on first use (PEP 562): reading a run store (``nnc4rl.study.results``,
# ``nnc4rl.runs.schema``) must not pull in torch, Stable-Baselines3 or gymnasium.
_LAZY = {
    "measure_model_zip": "nnc4rl.compress.measure",
    "measure_state_dict": "nnc4rl.compress.measure",
    "Phase": "nnc4rl.compress.plan",
    "TrainingPlan": "nnc4rl.compress.plan",
    "MaskSet": "nnc4rl.compress.pruning",
    "erdos_renyi_densities": "nnc4rl.compress.pruning",
    "magnitude_masks": "nnc4rl.compress.pruning",
    "fake_quantize": "nnc4rl.compress.quant",
    "post_training_quantize": "nnc4rl.compress.quant",
    "CompressionCallback": "nnc4rl.compress.callback",
    "compressed_network": "nnc4rl.compress.callback",
    "network_size": "nnc4rl.compress.size",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nnc4rl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


from nnc4rl.core import __version__  # noqa: E402, F401  (the package version)

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

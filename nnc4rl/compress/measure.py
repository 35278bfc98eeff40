"""Measure what a saved SB3 model really holds: sparsity, quantization grid and size.

Everything here reads the tensors of ``model.zip`` (SB3's format), never the schedule's targets.
"""

from __future__ import annotations

from pathlib import Path

import torch
from stable_baselines3.common.save_util import load_from_zip_file

from nnc4rl.compress.algos import AlgoInfo, algo_by_name, algo_of_keys
from nnc4rl.compress.quant import weight_scale
from nnc4rl.compress.size import network_size


def _info(state_dict: dict[str, torch.Tensor], algo: str | None) -> AlgoInfo:
    return algo_by_name(algo) if algo is not None else algo_of_keys(state_dict)


def compressed_weights(
    state_dict: dict[str, torch.Tensor], algo: str | None = None
) -> dict[str, torch.Tensor]:
    """Weights of the deployed compressed network in a policy ``state_dict``, keyed by name.

    The deployed layers of the algorithm's registry entry (:mod:`nnc4rl.compress.algos`; ``algo``
    ``None`` recognises the layout from the keys): SAC / TQC the actor's ``latent_pi`` + ``mu``
    (``log_std`` is pruned and quantized too but only serves exploration, so it is neither exported
    nor counted), TD3 / DDPG the actor, DQN the Q-network (target networks are not counted),
    PPO / A2C the features extractor, ``mlp_extractor.policy_net`` and ``action_net``. These are
    exactly the layers ``nnc4rl export`` writes.
    """
    info = _info(state_dict, algo)
    skip = tuple(f"{info.prefix}{n}." for n in info.not_deployed)
    return {
        k: v
        for k, v in state_dict.items()
        if k.startswith(info.part_prefixes)
        and not (skip and k.startswith(skip))
        and k.endswith(".weight")
        and v.dim() in (2, 4)
    }


def network_digest(state_dict: dict[str, torch.Tensor], algo: str | None = None) -> str:
    """SHA-256 of every tensor of the compressed network (SAC: the whole actor; DQN: the
    Q-network; PPO: its action path), names and bytes in order: equal digests mean bit-identical
    networks."""
    import hashlib

    prefixes = _info(state_dict, algo).part_prefixes
    digest = hashlib.sha256()
    for name in sorted(k for k in state_dict if k.startswith(prefixes)):
        digest.update(name.encode())
        digest.update(state_dict[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def grid_check(weight: torch.Tensor, bits: int) -> dict:
    """How well ``weight`` sits on a symmetric ``bits``-bit grid (per channel for 4-d weights).

    :returns: ``max_levels`` (most distinct integer codes in one tensor/channel, zero included),
        ``max_abs_code`` and ``max_offgrid`` (largest distance of ``w / scale`` from an integer).
    """
    w = weight.detach().double()
    per_channel = w.dim() == 4
    scale = weight_scale(w, bits, per_channel)
    rows = w.flatten(1) if per_channel else w.reshape(1, -1)
    codes = rows / scale.reshape(-1, 1)
    levels = max(int(torch.unique(r).numel()) for r in torch.round(codes))
    return {
        "max_levels": levels,
        "max_abs_code": int(torch.round(codes).abs().max()),
        "max_offgrid": float((codes - torch.round(codes)).abs().max()),
    }


def measure_state_dict(
    state_dict: dict[str, torch.Tensor], bits: int | None, algo: str | None = None
) -> dict:
    """Sparsity, size and (for ``bits``) grid facts of the compressed network of a policy.

    :param algo: the registry name (``ppo``); ``None`` recognises the layout from the keys.
    """
    weights = compressed_weights(state_dict, algo)
    layers = {
        k.removesuffix(".weight"): (
            w,
            state_dict.get(k.removesuffix(".weight") + ".bias"),
            w.dim() == 4,
        )
        for k, w in weights.items()
    }
    size = network_size(layers, bits=bits or 32)
    out = {
        "network_sha256": network_digest(state_dict, algo),
        "measured_sparsity": size["sparsity"],
        "params": size["numel"],
        "nnz": size["nnz"],
        "layer_sparsity": {k: float((w == 0).double().mean()) for k, w in weights.items()},
        "size": {
            k: size[k] for k in ("fp32_bytes", "compressed_bytes", "nominal_ratio", "real_ratio")
        },
        "size_layers": size["layers"],
    }
    if bits is not None:
        checks = [grid_check(w, bits) for w in weights.values()]
        out["quantization"] = {
            "bits": bits,
            "max_levels": max(c["max_levels"] for c in checks),
            "max_abs_code": max(c["max_abs_code"] for c in checks),
            "max_offgrid": max(c["max_offgrid"] for c in checks),
        }
    return out


def load_policy_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The policy ``state_dict`` stored in an SB3 ``model.zip``."""
    _, params, _ = load_from_zip_file(path, device="cpu", print_system_info=False)
    return params["policy"]


def measure_model_zip(path: str | Path, bits: int | None = None, algo: str | None = None) -> dict:
    """:func:`measure_state_dict` of the model saved at ``path``."""
    return measure_state_dict(load_policy_state(path), bits, algo)

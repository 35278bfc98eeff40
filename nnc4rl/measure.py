"""Measure what a saved SB3 model really holds: sparsity, quantization grid and size.

Everything here reads the tensors of ``model.zip`` (SB3's format), never the schedule's targets.
"""

from __future__ import annotations

from pathlib import Path

import torch
from stable_baselines3.common.save_util import load_from_zip_file

from nnc4rl.quant import qmax
from nnc4rl.size import network_size


def compressed_weights(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights of the compressed network in a policy ``state_dict``, keyed by their name.

    SAC: the actor's Linear weights (``actor.*.weight``). DQN: the Q-network's Linear and Conv2d
    weights (``q_net.*.weight``; the target network ``q_net_target.*`` is not counted).
    """
    prefix = "actor." if any(k.startswith("actor.") for k in state_dict) else "q_net."
    return {
        k: v
        for k, v in state_dict.items()
        if k.startswith(prefix) and k.endswith(".weight") and v.dim() in (2, 4)
    }


def grid_check(weight: torch.Tensor, bits: int) -> dict:
    """How well ``weight`` sits on a symmetric ``bits``-bit grid (per channel for 4-d weights).

    :returns: ``max_levels`` (most distinct integer codes in one tensor/channel, zero included),
        ``max_abs_code`` and ``max_offgrid`` (largest distance of ``w / scale`` from an integer).
    """
    w = weight.detach().double()
    rows = w.flatten(1) if w.dim() == 4 else w.reshape(1, -1)
    amax = rows.abs().amax(dim=1, keepdim=True)
    scale = torch.where(amax > 0, amax / qmax(bits), torch.ones_like(amax))
    codes = rows / scale
    levels = max(int(torch.unique(r).numel()) for r in torch.round(codes))
    return {
        "max_levels": levels,
        "max_abs_code": int(torch.round(codes).abs().max()),
        "max_offgrid": float((codes - torch.round(codes)).abs().max()),
    }


def measure_state_dict(state_dict: dict[str, torch.Tensor], bits: int | None) -> dict:
    """Sparsity, size and (for ``bits``) grid facts of the compressed network of a policy."""
    weights = compressed_weights(state_dict)
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


def measure_model_zip(path: str | Path, bits: int | None = None) -> dict:
    """:func:`measure_state_dict` of the model saved at ``path``."""
    return measure_state_dict(load_policy_state(path), bits)

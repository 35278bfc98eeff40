"""Unstructured magnitude pruning with global, uniform and Erdos-Renyi(-kernel) distributions.

A *prunable layer* is an ``nn.Linear`` or ``nn.Conv2d``; only its ``weight`` is pruned, never its
bias. Masks are boolean tensors of the weight's shape (``True`` = kept). Weights that a mask
removes are set to exactly ``0.0`` and kept there by :class:`MaskSet` (see ``apply``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from nnc4rl.core.config import check_sparsity

Distribution = Literal["global", "uniform", "erdos_renyi"]
DISTRIBUTIONS: tuple[str, ...] = ("global", "uniform", "erdos_renyi")
PRUNABLE_TYPES = (nn.Linear, nn.Conv2d)


def erdos_renyi_score(weight_shape: Sequence[int]) -> float:
    """Unnormalised Erdos-Renyi density of a layer (the paper's formula without ``eps``).

    Linear ``(n_out, n_in)``: ``(n_in + n_out) / (n_in * n_out)``.
    Conv2d ``(n_out, n_in, h, w)`` (Erdos-Renyi-kernel): ``(n_in + n_out + w + h) / (n_in n_out w h)``.
    """
    if len(weight_shape) == 2:
        n_out, n_in = weight_shape
        return (n_in + n_out) / (n_in * n_out)
    if len(weight_shape) == 4:
        n_out, n_in, h, w = weight_shape
        return (n_in + n_out + w + h) / (n_in * n_out * w * h)
    raise ValueError(f"weight shape {tuple(weight_shape)} is not a Linear or Conv2d weight")


def erdos_renyi_densities(shapes: Sequence[Sequence[int]], sparsity: float) -> list[float]:
    """Per-layer kept fractions ``min(1, eps * score_l)`` meeting the network-wide ``sparsity``.

    ``eps`` is solved so that ``sum_l d_l n_l = (1 - sparsity) sum_l n_l``. A layer whose density
    would exceed 1 stays dense and ``eps`` is solved again for the other layers (RigL's way).
    """
    sizes = [math.prod(s) for s in shapes]
    scores = [erdos_renyi_score(s) for s in shapes]
    keep_total = (1.0 - sparsity) * sum(sizes)
    dense: set[int] = set()
    while True:
        budget = keep_total - sum(sizes[i] for i in dense)
        weighted = sum(scores[i] * sizes[i] for i in range(len(sizes)) if i not in dense)
        eps = budget / weighted if weighted > 0 else 0.0
        overflow = {i for i in range(len(sizes)) if i not in dense and eps * scores[i] > 1.0}
        if not overflow:
            return [1.0 if i in dense else eps * scores[i] for i in range(len(sizes))]
        dense |= overflow


def layer_keep_counts(
    shapes: Sequence[Sequence[int]], sparsity: float, distribution: Distribution
) -> list[int] | None:
    """Number of weights to keep in each layer, or ``None`` for ``global`` (one threshold)."""
    sizes = [math.prod(s) for s in shapes]
    if distribution == "global":
        return None
    if distribution == "uniform":
        densities = [1.0 - sparsity] * len(sizes)
    elif distribution == "erdos_renyi":
        densities = erdos_renyi_densities(shapes, sparsity)
    else:
        raise ValueError(
            f"distribution={distribution!r} is invalid: choose one of {', '.join(DISTRIBUTIONS)}"
        )
    return [min(n, max(0, round(d * n))) for d, n in zip(densities, sizes, strict=True)]


def _keep_top(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """Boolean mask keeping the ``keep`` largest entries of a flat score tensor."""
    mask = torch.zeros_like(scores, dtype=torch.bool)
    if keep > 0:
        mask[torch.topk(scores, keep, sorted=False).indices] = True
    return mask


def magnitude_masks(
    weights: Sequence[torch.Tensor],
    sparsity: float,
    distribution: Distribution,
    previous: Sequence[torch.Tensor] | None = None,
    tied: dict[int, int] | None = None,
) -> list[torch.Tensor]:
    """Masks pruning the smallest-magnitude weights to reach ``sparsity`` over all ``weights``.

    :param weights: the weight tensors of the prunable layers (any shape).
    :param sparsity: network-wide fraction of weights to remove, in [0, 1).
    :param distribution: ``global`` (one magnitude threshold over all layers), ``uniform`` (the same
        fraction in each layer) or ``erdos_renyi`` (Erdos-Renyi / Erdos-Renyi-kernel densities).
    :param previous: masks of an earlier event; weights pruned there are pruned first again, so
        gradual pruning never regrows a weight.
    :param tied: ``{layer index: anchor index}``: layers outside the budget, each pruned to its
        anchor's resulting density (the SAC ``log_std`` head follows ``mu``, as the authors do).
        ``sparsity`` is then met exactly over the other layers: the network that is deployed.
    :returns: boolean masks shaped like ``weights`` (``True`` = kept).
    """
    check_sparsity(sparsity)
    tied = dict(tied or {})
    free = [i for i in range(len(weights)) if i not in tied]
    if any(a not in free for a in tied.values()):
        raise ValueError(f"tied={tied} must map layers to untied anchor layers")
    scores = []
    for i, w in enumerate(weights):
        s = w.detach().abs().flatten().float()
        if previous is not None:
            # -1 ranks already-pruned weights below every live weight (|w| >= 0).
            s = torch.where(previous[i].flatten(), s, torch.full_like(s, -1.0))
        scores.append(s)
    masks: dict[int, torch.Tensor] = {}
    keeps = layer_keep_counts([weights[i].shape for i in free], sparsity, distribution)
    if keeps is None:
        flat = torch.cat([scores[i] for i in free])
        keep_all = _keep_top(flat, round((1.0 - sparsity) * flat.numel()))
        masks.update(zip(free, keep_all.split([scores[i].numel() for i in free]), strict=True))
    else:
        masks.update((i, _keep_top(scores[i], k)) for i, k in zip(free, keeps, strict=True))
    for i, anchor in tied.items():
        density = float(masks[anchor].float().mean())
        masks[i] = _keep_top(scores[i], round(density * scores[i].numel()))
    return [masks[i].view_as(w) for i, w in enumerate(weights)]


def prunable_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, layer)`` of every Linear / Conv2d inside ``module``, in registration order."""
    return [(n, m) for n, m in module.named_modules() if isinstance(m, PRUNABLE_TYPES)]


class MaskSet:
    """Masks for a list of layers, enforced on them and on any mirror copies (a target network).

    :param layers: the layers whose ``weight`` is pruned.
    :param mirrors: layers that must carry the same zeros, aligned with ``layers`` (e.g. the DQN
        target network's layers), or ``None``.
    :param tied: ``{layer index: anchor index}`` of layers pruned to their anchor's density and
        left out of the sparsity budget (see :func:`magnitude_masks`).
    """

    def __init__(
        self,
        layers: Sequence[nn.Module],
        mirrors: Sequence[nn.Module] | None = None,
        tied: dict[int, int] | None = None,
    ):
        self.layers = list(layers)
        self.tied = dict(tied or {})
        self.mirrors = list(mirrors) if mirrors is not None else []
        if self.mirrors and len(self.mirrors) != len(self.layers):
            raise ValueError("mirrors must be aligned with layers")
        self.masks = [torch.ones_like(m.weight, dtype=torch.bool) for m in self.layers]
        self.sparsity = 0.0

    @classmethod
    def from_zeros(
        cls,
        layers: Sequence[nn.Module],
        mirrors: Sequence[nn.Module] | None = None,
        tied: dict[int, int] | None = None,
    ) -> MaskSet:
        """Masks read off the exact zeros already in the weights (e.g. of a loaded model)."""
        masks = cls(layers, mirrors, tied)
        masks.masks = [m.weight.detach() != 0 for m in masks.layers]
        masks.sparsity = masks.measured_sparsity()
        return masks

    def prune_to(self, sparsity: float, distribution: Distribution) -> None:
        """Recompute the masks by magnitude for ``sparsity`` (never regrowing) and apply them."""
        weights = [m.weight for m in self.layers]
        self.masks = magnitude_masks(weights, sparsity, distribution, self.masks, self.tied)
        self.sparsity = sparsity
        self.apply(include_mirrors=True)

    @torch.no_grad()
    def apply(self, include_mirrors: bool = False) -> None:
        """Zero the pruned weights in place (and in the mirrors when asked)."""
        for layer, mask in zip(self.layers, self.masks, strict=True):
            layer.weight.mul_(mask)
        if include_mirrors and self.mirrors:
            for layer, mask in zip(self.mirrors, self.masks, strict=True):
                layer.weight.mul_(mask)

    def measured_sparsity(self) -> float:
        """Fraction of exact zeros over the budgeted (untied) weight tensors, read from the
        weights: for a SAC actor, the deployed path ``latent_pi`` + ``mu``."""
        budgeted = [m for i, m in enumerate(self.layers) if i not in self.tied]
        zeros = sum(int((m.weight == 0).sum()) for m in budgeted)
        return zeros / sum(m.weight.numel() for m in budgeted)

"""Symmetric uniform fake quantization of weights (QAT) and post-training quantization (PTQ).

A ``b``-bit weight is ``q * scale`` with the integer ``q`` in ``[-(2^(b-1)-1), 2^(b-1)-1]`` and
``scale = max|w| / (2^(b-1)-1)`` taken from the current weights: per tensor for ``nn.Linear``,
per output channel for ``nn.Conv2d``. Zero maps to zero, so pruned weights stay pruned. The
backward pass is the straight-through estimator: the gradient passes unchanged to the fp32
latent weights (every weight lies inside the clipping range because the scale comes from max|w|).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nnc4rl.compress.pruning import prunable_layers


def qmax(bits: int) -> int:
    """Largest integer level of a symmetric ``bits``-bit grid: ``2^(bits-1) - 1``."""
    return 2 ** (bits - 1) - 1


def weight_scale(weight: torch.Tensor, bits: int, per_channel: bool) -> torch.Tensor:
    """Scale(s) of the grid: a 0-d tensor, or ``(n_out, 1, ..., 1)`` per output channel.

    A tensor (channel) that is all zeros gets scale 1, so it quantizes to zeros.
    """
    w = weight.detach()
    if per_channel:
        amax = w.abs().flatten(1).amax(dim=1).view(-1, *([1] * (w.dim() - 1)))
    else:
        amax = w.abs().amax()
    return torch.where(amax > 0, amax / qmax(bits), torch.ones_like(amax))


def quantize_to_int(weight: torch.Tensor, bits: int, per_channel: bool):
    """Integer codes and scales: ``weight ~= codes * scale``. Returns ``(codes int32, scale)``."""
    scale = weight_scale(weight, bits, per_channel)
    m = qmax(bits)
    codes = torch.clamp(torch.round(weight.detach() / scale), -m, m).to(torch.int32)
    return codes, scale


class _FakeQuantSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight: torch.Tensor, bits: int, per_channel: bool) -> torch.Tensor:
        codes, scale = quantize_to_int(weight, bits, per_channel)
        return codes.to(weight.dtype) * scale

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        # Straight-through estimator: identity inside the clipping range, which is all weights.
        return grad_output, None, None


def fake_quantize(weight: torch.Tensor, bits: int = 8, per_channel: bool = False) -> torch.Tensor:
    """Dequantized grid values of ``weight`` (same shape and dtype), with an STE gradient."""
    return _FakeQuantSTE.apply(weight, bits, per_channel)


def is_per_channel(layer: nn.Module) -> bool:
    """The paper's granularity: per output channel for conv layers, per tensor otherwise."""
    return isinstance(layer, nn.Conv2d)


class FakeQuantLinear(nn.Linear):
    """``nn.Linear`` whose forward uses the fake-quantized weight when ``fake_quant_bits`` is set.

    Parameter names are those of ``nn.Linear`` so SB3's ``state_dict`` and ``load`` are unchanged.
    """

    fake_quant_bits: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fake_quant_bits is None:
            return F.linear(x, self.weight, self.bias)
        return F.linear(x, fake_quantize(self.weight, self.fake_quant_bits, False), self.bias)


class FakeQuantConv2d(nn.Conv2d):
    """``nn.Conv2d`` with per-output-channel fake quantization when ``fake_quant_bits`` is set."""

    fake_quant_bits: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fake_quant_bits is None:
            return self._conv_forward(x, self.weight, self.bias)
        w = fake_quantize(self.weight, self.fake_quant_bits, True)
        return self._conv_forward(x, w, self.bias)


_FAKE_QUANT_CLASS = {nn.Linear: FakeQuantLinear, nn.Conv2d: FakeQuantConv2d}
_PLAIN_CLASS = {v: k for k, v in _FAKE_QUANT_CLASS.items()}


def enable_fake_quant(layers: list[nn.Module], bits: int) -> None:
    """Turn on fake quantization in place (layers keep their parameters and names).

    The layer's class is swapped for its fake-quant subclass rather than wrapping it, so the
    optimizer's parameter references, SB3's ``state_dict`` keys and ``load`` all stay valid.
    """
    for layer in layers:
        if type(layer) in _FAKE_QUANT_CLASS:
            layer.__class__ = _FAKE_QUANT_CLASS[type(layer)]
        layer.fake_quant_bits = bits


@torch.no_grad()
def bake_fake_quant(layers: list[nn.Module]) -> None:
    """Write the grid values into the weights and restore the plain layer classes.

    Afterwards the plain network computes exactly what the fake-quant network computed.
    """
    for layer in layers:
        bits = getattr(layer, "fake_quant_bits", None)
        if bits is not None:
            layer.weight.copy_(fake_quantize(layer.weight, bits, is_per_channel(layer)))
            del layer.fake_quant_bits
        if type(layer) in _PLAIN_CLASS:
            layer.__class__ = _PLAIN_CLASS[type(layer)]


@torch.no_grad()
def post_training_quantize(module: nn.Module, bits: int = 8) -> None:
    """PTQ baseline: round every Linear/Conv2d weight of ``module`` onto its grid, no training."""
    for _, layer in prunable_layers(module):
        layer.weight.copy_(fake_quantize(layer.weight, bits, is_per_channel(layer)))

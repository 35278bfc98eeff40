"""Fake quantization: grid levels, max code, zero kept, idempotence, straight-through gradient."""

import pytest
import torch
from torch import nn

from nnc4rl.compress.quant import (
    bake_fake_quant,
    enable_fake_quant,
    fake_quantize,
    post_training_quantize,
    qmax,
    quantize_to_int,
)


def sparse_weight(shape, sparsity=0.7, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g)
    return w * (torch.rand(shape, generator=g) > sparsity)


@pytest.mark.parametrize("bits", range(2, 9))
@pytest.mark.parametrize("shape, per_channel", [((64, 32), False), ((16, 8, 3, 3), True)])
def test_grid_levels_max_code_and_zero(bits, shape, per_channel):
    w = sparse_weight(shape)
    q = fake_quantize(w, bits, per_channel)
    codes, scale = quantize_to_int(w, bits, per_channel)
    groups = codes.flatten(1) if per_channel else codes.reshape(1, -1)
    for g in groups:
        assert torch.unique(g).numel() <= 2**bits - 1
        assert g.abs().max() == qmax(bits)  # the largest |w| maps to the top level
    assert torch.equal(q, codes.float() * scale)
    assert (q[w == 0] == 0).all()
    # per-channel scales differ across channels; per-tensor is one number
    assert scale.numel() == (shape[0] if per_channel else 1)


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("per_channel", [False, True])
def test_idempotent(bits, per_channel):
    w = sparse_weight((8, 4, 3, 3) if per_channel else (32, 16), seed=bits)
    q1 = fake_quantize(w, bits, per_channel)
    q2 = fake_quantize(q1, bits, per_channel)
    assert torch.equal(
        quantize_to_int(q1, bits, per_channel)[0], quantize_to_int(w, bits, per_channel)[0]
    )
    torch.testing.assert_close(q2, q1, rtol=1e-6, atol=0)


def test_ste_gradient_is_identity_inside_range():
    w = sparse_weight((20, 10)).requires_grad_(True)
    upstream = torch.randn(20, 10)
    (fake_quantize(w, 8) * upstream).sum().backward()
    assert torch.equal(w.grad, upstream)


def test_fake_quant_layers_keep_names_and_bake_exactly():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5))
    keys = list(net.state_dict())
    layers = [net[0], net[3]]
    x = torch.randn(2, 4, 8, 8)
    enable_fake_quant(layers, 8)
    assert list(net.state_dict()) == keys
    out_fake = net(x)
    bake_fake_quant(layers)
    assert type(net[0]) is nn.Conv2d and type(net[3]) is nn.Linear
    assert torch.equal(net(x), out_fake)


def test_post_training_quantization_puts_weights_on_the_grid():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 2))
    bias = net[0].bias.detach().clone()
    post_training_quantize(net, bits=4)
    for layer in (net[0], net[2]):
        codes, scale = quantize_to_int(layer.weight, 4, False)
        assert torch.unique(codes).numel() <= 15
        torch.testing.assert_close(layer.weight, codes.float() * scale)
    assert torch.equal(net[0].bias, bias)

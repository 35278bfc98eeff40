"""Size accounting: the paper's nominal ratio and the real stored bytes, from the tensors."""

import pytest
import torch

from nnc4rl.compress.pruning import magnitude_masks
from nnc4rl.compress.size import index_bytes, layer_size, network_size

HOPPER = [(256, 11), (256, 256), (3, 256), (3, 256)]


def hopper_actor(sparsity: float, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(s, generator=g) for s in HOPPER]
    if sparsity:
        masks = magnitude_masks(weights, sparsity, "erdos_renyi")
        weights = [w * m for w, m in zip(weights, masks, strict=True)]
    return {f"l{i}": (w, torch.zeros(w.shape[0]), False) for i, w in enumerate(weights)}


def test_hopper_actor_fp32_bytes_and_dense_ratio():
    size = network_size(hopper_actor(0.0), bits=32)
    assert size["numel"] == 69_888
    assert size["fp32_bytes"] == (69_888 + 518) * 4 == 281_624
    assert size["real_ratio"] == 1.0 and size["nominal_ratio"] == 1.0
    int8 = network_size(hopper_actor(0.0), bits=8)
    # int8 dense: 1 byte per weight + fp32 biases + one fp32 scale per layer
    assert int8["compressed_bytes"] == 69_888 + 518 * 4 + 4 * 4


def test_hopper_99_int8_nominal_and_real():
    size = network_size(hopper_actor(0.99), bits=8)
    nnz = size["nnz"]
    assert abs(nnz - 699) <= 4
    assert size["nominal_ratio"] == pytest.approx(4 / (nnz / 69_888))
    # the 256x256 layer is best stored as CSR with 8-bit column indices
    assert size["layers"][1]["encoding"] == "csr8"
    assert 50 < size["real_ratio"] < 80  # indices and biases cost most of the 400x


def test_encoding_choice_on_hand_made_matrices():
    w = torch.zeros(4, 300)
    w[0, 0] = w[3, 299] = 1.0
    s = layer_size("x", w, None, bits=8, per_channel=False)
    # 300 columns > 256: no 8-bit CSR; CSR16 = 2 values + 2*2 indices + 5 row ptrs * 2 = 16 bytes
    assert s.encoding == "csr16" and s.index_bytes == 2 * 2 + 5 * 2 and s.value_bytes == 2
    dense = torch.ones(4, 8)
    assert layer_size("d", dense, torch.ones(4), 8, False).encoding == "dense"
    half = torch.ones(64, 64)
    half[:, ::2] = 0
    s = layer_size("h", half, None, 8, False)
    assert s.encoding == "bitmask" and s.index_bytes == 64 * 64 // 8
    conv = torch.ones(8, 4, 3, 3)
    s = layer_size("c", conv, torch.ones(8), 8, per_channel=True)
    assert s.scale_bytes == 8 * 4 and s.bias_bytes == 32


def test_index_bytes_row_pointer_width():
    assert index_bytes(10, 100, 70_000)["csr8"] == 70_000 + 11 * 4
    assert index_bytes(10, 100, 100)["csr8"] == 100 + 11 * 2
    assert "csr8" not in index_bytes(10, 257, 5)
    assert index_bytes(3, 3, 9)["dense"] == 0 and index_bytes(3, 3, 8)["dense"] == 0


def test_a_nearly_dense_fp32_layer_is_stored_dense_at_ratio_one():
    w = torch.ones(64, 64)
    w[0, :3] = 0  # a few zeros do not pay for any index at fp32
    size = network_size({"l": (w, torch.ones(64), False)}, bits=32)
    assert size["layers"][0]["encoding"] == "dense" and size["real_ratio"] == 1.0

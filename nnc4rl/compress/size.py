"""Size accounting from the actual tensors: the paper's nominal ratio and real stored bytes.

*Nominal* (the paper's "Nx"): ``(32 / bits) / (1 - sparsity)`` - non-zero values only, no index
cost, no biases. *Real*: every byte needed to run the network:

* non-zero weight values at ``bits`` bits each (fp32 when not quantized);
* per layer, the cheapest of: no index (dense), CSR with 8-bit column indices (only when the row
  has <= 256 columns), CSR with 16-bit column indices (<= 65 536 columns), or a bitmask of one
  bit per weight. CSR stores ``rows + 1`` row pointers of 16 bits (32 bits if ``nnz`` > 65 535);
* fp32 biases; fp32 scales (one per tensor for Linear, one per output channel for Conv2d).

A conv weight ``(n_out, n_in, h, w)`` is a matrix of ``n_out`` rows and ``n_in * h * w`` columns.
The fp32 reference is every weight and bias of the same layers at 4 bytes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

ENCODINGS = ("dense", "csr8", "csr16", "bitmask")


@dataclass(frozen=True)
class LayerSize:
    """Stored bytes of one layer under its cheapest index encoding."""

    name: str
    numel: int
    nnz: int
    encoding: str
    value_bytes: int
    index_bytes: int
    bias_bytes: int
    scale_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.value_bytes + self.index_bytes + self.bias_bytes + self.scale_bytes


def index_bytes(rows: int, cols: int, nnz: int) -> dict[str, int]:
    """Index cost in bytes of each encoding that can represent a ``rows x cols`` matrix."""
    options = {"dense": 0, "bitmask": math.ceil(rows * cols / 8)}  # dense stores the zeros too
    row_ptr = (rows + 1) * (2 if nnz <= 0xFFFF else 4)
    if cols <= 256:
        options["csr8"] = nnz + row_ptr
    if cols <= 65536:
        options["csr16"] = 2 * nnz + row_ptr
    return options


def value_bytes(count: int, bits: int) -> int:
    return math.ceil(count * bits / 8)


def layer_size(
    name: str, weight: torch.Tensor, bias: torch.Tensor | None, bits: int, per_channel: bool
) -> LayerSize:
    """Cheapest storage of one layer; ``bits`` = 32 means fp32 values and no scales."""
    rows = weight.shape[0]
    cols = weight.numel() // rows
    nnz = int((weight != 0).sum())
    options = index_bytes(rows, cols, nnz)
    # dense storage keeps every value (zeros too); the sparse encodings keep only non-zeros
    costs = {
        enc: idx + value_bytes(weight.numel() if enc == "dense" else nnz, bits)
        for enc, idx in options.items()
    }
    best = min(costs, key=costs.get)
    return LayerSize(
        name=name,
        numel=weight.numel(),
        nnz=nnz,
        encoding=best,
        value_bytes=value_bytes(weight.numel() if best == "dense" else nnz, bits),
        index_bytes=options[best],
        bias_bytes=4 * (bias.numel() if bias is not None else 0),
        scale_bytes=0 if bits == 32 else 4 * (rows if per_channel else 1),
    )


def network_size(
    layers: dict[str, tuple[torch.Tensor, torch.Tensor | None, bool]], bits: int = 32
) -> dict:
    """Size summary of a network given ``{name: (weight, bias, per_channel)}`` of its layers.

    :param bits: stored bit width of the weight values (32 = unquantized fp32).
    :returns: ``fp32_bytes``, ``compressed_bytes``, ``nominal_ratio``, ``real_ratio``,
        ``sparsity`` (zero fraction over the weights), ``nnz`` and a per-layer breakdown.
    """
    sizes = [layer_size(n, w, b, bits, pc) for n, (w, b, pc) in layers.items()]
    numel = sum(s.numel for s in sizes)
    nnz = sum(s.nnz for s in sizes)
    fp32 = 4 * numel + sum(s.bias_bytes for s in sizes)
    compressed = sum(s.total_bytes for s in sizes)
    sparsity = 1.0 - nnz / numel
    return {
        "fp32_bytes": fp32,
        "compressed_bytes": compressed,
        "nominal_ratio": (32 / bits) / (1.0 - sparsity) if nnz else math.inf,
        "real_ratio": fp32 / compressed,
        "sparsity": sparsity,
        "nnz": nnz,
        "numel": numel,
        "layers": [asdict(s) | {"total_bytes": s.total_bytes} for s in sizes],
    }

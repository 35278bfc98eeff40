"""Dead-unit removal: hidden units that pruning left without incoming or outgoing weights.

A hidden unit ``j`` between two linear layers ``A`` (its row ``j``) and ``B`` (its column ``j``),
joined by a ReLU, is *dead* when

* ``B[:, j]`` is all zero (no outgoing weights): nothing reads it; removing row ``j`` of ``A``
  and column ``j`` of ``B`` changes no output, in either arithmetic path; or
* ``A[j, :]`` is all zero (no incoming weights): it is the constant ``ReLU(bias_j)``, which is
  folded into ``B``'s bias. Uncalibrated: ``bias_B += scale_B * B[:, j] * ReLU(bias_j)`` (the
  fp32 outputs move by float rounding only). Calibrated: the integer path's constant code
  ``q_j = requant(bias_q_j)`` is folded, ``bias_B = (bias_q_B + B[:, j] q_j) s_in s_w`` on the
  rows it touches, checked to give that integer bias back exactly (units for which the float32
  bias cannot are kept), so the integer outputs are bit-identical and the fp32 path moves by the
  int8 rounding of those constant activations (less than the integer path's own error).

Removal repeats until nothing changes (dropping a unit can leave an upstream unit without
outgoing weights). Only linear -> relu -> linear chains are touched (MLP policies, the MLP head
of a CNN); the activation scales of a calibrated artifact stay as they are, so its integer outputs
are bit-identical (tests/test_dead_units.py, and on the M4 tests/test_mcu.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from nnc4rl.export.model import Artifact, Layer


@dataclass
class DeadUnits:
    """What :func:`remove_dead_units` removed: per hidden layer (by name) the units without
    outgoing weights and those without incoming weights folded into the next bias, and the
    non-zero weights that went with them."""

    no_outgoing: dict[str, int]
    folded: dict[str, int]
    nnz_removed: int


def _chains(art: Artifact) -> list[tuple[int, int, int, int]]:
    """``(op_a, layer_a, op_b, layer_b)`` for each ``linear, relu, linear`` in the graph."""
    ops, out = art.ops, []
    for i in range(len(ops) - 2):
        if (ops[i]["op"], ops[i + 1]["op"], ops[i + 2]["op"]) == ("linear", "relu", "linear"):
            out.append((i, ops[i]["layer"], i + 2, ops[i + 2]["layer"]))
    return out


def _keep_rows(layer: Layer, keep: np.ndarray) -> Layer:
    scale = layer.scale[keep] if layer.scale.size > 1 else layer.scale
    return Layer(layer.name, layer.kind, layer.codes[keep].copy(), scale.copy(),
                 layer.bias[keep].copy(), layer.bits)  # fmt: skip


def _int_bias(art: Artifact, op_b: int) -> np.ndarray:
    from nnc4rl.export.integer import integer_plan

    return integer_plan(art).ops[op_b].bias


def _acc_scale(art: Artifact, op_b: int) -> np.ndarray:
    """float64 ``s_in * s_w`` per row of the layer of op ``op_b`` (its accumulator unit)."""
    from nnc4rl.export.integer import integer_plan

    s_in = integer_plan(art).scales[op_b - 1]
    return np.float64(s_in) * art.layers[art.ops[op_b]["layer"]].channel_scale().astype(np.float64)


def _const_codes(art: Artifact, op_a: int, rows: np.ndarray) -> np.ndarray:
    """The integer path's constant output codes of layer ``op_a``'s rows without weights."""
    from nnc4rl.export.integer import QMAX, integer_plan

    lp = integer_plan(art).ops[op_a]
    acc = lp.bias[rows].astype(np.int64)
    q = (acc * lp.mult[rows] + (np.int64(1) << (lp.shift[rows] - 1))) >> lp.shift[rows]
    return np.clip(q, lp.lo, QMAX)


def _step(art: Artifact, op_a: int, la: int, op_b: int, lb: int, report: DeadUnits) -> bool:
    """Remove the dead units between layers ``la`` and ``lb`` once; whether any went."""
    a, b = art.layers[la], art.layers[lb]
    no_in = ~np.any(a.matrix != 0, axis=1)
    no_out = ~np.any(b.matrix != 0, axis=0)
    fold = np.flatnonzero(no_in & ~no_out)
    if fold.size:
        relu_b = np.maximum(a.bias[fold].astype(np.float64), 0.0)
        w_b = b.matrix[:, fold].astype(np.float64) * b.channel_scale()[:, None].astype(np.float64)
        new_bias = (b.bias.astype(np.float64) + w_b @ relu_b).astype(np.float32)
        if art.integer is not None:  # the integer path must move by exactly B[:, j] q_j
            delta = b.matrix[:, fold].astype(np.int64) @ _const_codes(art, op_a, fold)
            rows = delta != 0
            target = _int_bias(art, op_b) + delta
            acc_scale = _acc_scale(art, op_b)
            new_bias = b.bias.copy()
            new_bias[rows] = (target[rows] * acc_scale[rows]).astype(np.float32)
            trial = copy.deepcopy(art)
            trial.layers[lb].bias = new_bias
            if not np.array_equal(_int_bias(trial, op_b), target):
                fold = fold[:0]  # the stored float32 bias cannot carry it: keep those units
                new_bias = b.bias
        b = Layer(b.name, b.kind, b.codes, b.scale, new_bias, b.bits)
    drop = no_out.copy()
    drop[fold] = True
    if drop.all():  # a layer keeps one unit (a zero-width layer has no C or ONNX form)
        drop[np.argmax(~no_out) if (~no_out).any() else 0] = False
    if not drop.any():
        return False
    keep = ~drop
    report.nnz_removed += int(np.count_nonzero(a.matrix[drop])) + int(
        np.count_nonzero(b.matrix[:, drop])
    )
    report.no_outgoing[a.name] = report.no_outgoing.get(a.name, 0) + int((drop & no_out).sum())
    report.folded[a.name] = report.folded.get(a.name, 0) + int((drop & ~no_out).sum())
    art.layers[la] = _keep_rows(a, keep)
    art.layers[lb] = Layer(b.name, b.kind, b.codes[:, keep].copy(), b.scale, b.bias, b.bits)
    return True


def remove_dead_units(art: Artifact) -> tuple[Artifact, DeadUnits]:
    """A copy of ``art`` without its dead hidden units (module docstring), and what went."""
    out = copy.deepcopy(art)
    report = DeadUnits({}, {}, 0)
    changed = True
    while changed:
        changed = False
        for op_a, la, op_b, lb in _chains(out):
            changed |= _step(out, op_a, la, op_b, lb, report)
    out.check()
    return out, report

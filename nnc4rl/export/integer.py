"""Full-integer inference (FORMAT.md "Integer path"): int8 activations, int32 accumulation,
fixed-point requantization, and the numpy reference that the C export matches bit for bit.

Conventions (those of TFLite / CMSIS-NN, symmetric: every zero point is 0):

* A tensor ``x`` is stored as int8 codes ``q`` with one float32 scale: ``x ~ s * q``,
  ``q`` in ``[-127, 127]``. The scales are static, calibrated once (:func:`calibrate`) on
  observations recorded from the policy's own evaluation episodes, and stored in the artifact
  (``integer.input_scale``, ``act_scale`` on the ops that make a new tensor).
* Input: a uint8 image goes in as is (its codes are the pixel values, scale ``1/255``); a float
  observation is quantized at the interface to **int16** codes (``integer.input_bits`` 16):
  ``q = round_half_away(clamp(obs * (1/s), +-32767))`` in float32. One scale serves every
  feature, and MuJoCo observations mix joint angles (~0.1 rad matters) with velocities of 20 and
  more: at int8 the angles would lose all resolution (a trained HalfCheetah actor dropped from
  5 567 to 2 517 in closed loop), at int16 the action error is that of the int8 hidden layers.
  The first layer then multiplies int16 codes by int8 weights into int32 (CMSIS-NN's s16
  kernels do the same); an artifact calibrated with ``input_bits`` 8 (format version 2 before
  this field) still runs as it was calibrated.
* A linear / conv layer accumulates ``bias_q + sum(w * q)`` in int32, ``bias_q =
  round(bias / (s_in s_w))``, then requantizes to its ``act_scale`` ``s_out`` by a fixed-point
  multiplier: ``M = s_in s_w / s_out = m * 2^-shift`` with ``m`` in ``[2^30, 2^31)``,
  ``q_out = clamp((acc * m + 2^(shift-1)) >> shift)`` (64-bit product, arithmetic shift), the
  clamp's lower bound 0 when a ReLU follows (fused), -127 otherwise.
* ``add`` (residual): ``q = clamp((x m_x + r m_r + 2^(k-1)) >> k)`` with 16-bit multipliers
  ``m_x = round(s_x / s_out 2^k)``, ``m_r = round(s_r / s_out 2^k)``.
* ``relu``, ``maxpool``, ``flatten``, ``save`` work on the codes and keep the scale.
* The last layer's int32 accumulators are the only thing converted to float:
  ``y = float(acc) * (s_in s_w)`` (float32), then ``tanh`` and the action rescaling (SAC); DQN
  takes the argmax of the accumulators.

Every constant the inner loops use (int32 biases, multipliers, shifts) is derived here from the
stored float32 scales, once, by :func:`integer_plan`; numpy and C use the same numbers.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnc4rl.export.inference import Policy, conv_columns, maxpool, network_layout, preprocess
from nnc4rl.export.model import Artifact, ArtifactError, Layer

QMAX = 127  # int8 activation codes lie in [-127, 127]
INPUT_BITS = 16  # float observations are quantized to int16 codes (module docstring)
INPUT_QMAX = {8: QMAX, 16: 32767}
ADD_BITS = 14  # the larger residual-add multiplier lies in [2^14, 2^15)


def needs_act_scale(art: Artifact, i: int) -> bool:
    """Whether op ``i`` makes a new int8 tensor (linear/conv but the output layer, and add)."""
    kind = art.ops[i]["op"]
    return kind == "add" or (kind in ("linear", "conv2d") and i != art.output_op)


def _relu_follows(art: Artifact, i: int) -> bool:
    return i + 1 < len(art.ops) and art.ops[i + 1]["op"] == "relu"


# -- calibration ---------------------------------------------------------------------------------
def float_activations(art: Artifact, x: np.ndarray) -> list[np.ndarray]:
    """The fp32 activation after each op (weight-only path) on preprocessed inputs ``x``."""
    from nnc4rl.export.inference import run_op

    outs, slots = [], {}
    for op in art.ops:
        x = run_op(art, op, x, slots)
        outs.append(x)
    return outs


def check_integer_ops(art: Artifact) -> None:
    """Refuse a graph the integer path cannot run: a ``tanh`` before the output layer."""
    if "tanh" in [op["op"] for op in art.ops[: art.output_op]]:
        raise ArtifactError(
            "hidden tanh activations (SB3's default for PPO / A2C) have no integer path: export "
            "with fp32 activations (without --integer), or train with activation_fn ReLU"
        )


def calibrate(
    art: Artifact, observations: np.ndarray, provenance: dict[str, Any] | None = None
) -> Artifact:
    """A copy of ``art`` with the static int8 scales of the integer path.

    Each scale is ``max|x| / 127`` of its tensor over ``observations`` in the fp32 (trained)
    network; a layer followed by a ReLU is calibrated after the ReLU (the two are fused).

    :param observations: ``(N, *obs_env_shape)`` env observations (from the policy's own
        evaluation episodes: :func:`nnc4rl.export.closed_loop.record_evaluation`).
    :param provenance: stored as ``integer.calibration`` (env, seeds, episodes).
    :raises ArtifactError: the graph has a hidden ``tanh`` (:func:`check_integer_ops`).
    """
    check_integer_ops(art)
    out = copy.deepcopy(art)
    x = preprocess(art, observations)
    acts = float_activations(art, x)
    for i, op in enumerate(out.ops):
        op.pop("act_scale", None)
        if needs_act_scale(art, i):
            t = acts[i + 1] if _relu_follows(art, i) else acts[i]
            op["act_scale"] = _scale(float(np.abs(t).max()))
    # int16 input codes unless the first layer's int32 accumulators could then overflow (an
    # observation of more than ~500 features): int8 codes then
    amax = float(np.abs(x).max())
    for bits in (8,) if art.image else (INPUT_BITS, 8):
        input_scale = 1.0 / 255.0 if art.image else _scale(amax, INPUT_QMAX[bits])
        out.integer = {
            "input_scale": float(np.float32(input_scale)),
            "input_bits": bits,
            "calibration": {"observations": len(observations)} | dict(provenance or {}),
        }
        try:
            integer_plan(out)  # checks the accumulators fit int32
            return out
        except ArtifactError:
            if bits == 8:
                raise
    raise AssertionError("unreachable")


def _scale(amax: float, qmax: int = QMAX) -> float:
    """float32 scale that maps ``amax`` to ``qmax`` (1 for an all-zero tensor)."""
    return float(np.float32(amax / qmax)) if amax > 0 else 1.0


def input_bits(art: Artifact) -> int:
    """Bits of the integer path's input codes: 8 for uint8 images, else the calibration's
    ``input_bits`` (16; 8 for an artifact calibrated before the field existed)."""
    return 8 if art.image else int((art.integer or {}).get("input_bits", 8))


# -- the integer constants -----------------------------------------------------------------------
def quantize_multiplier(real: float) -> tuple[int, int]:
    """``real = m * 2^-shift`` with ``m`` in ``[2^30, 2^31)`` and ``shift`` in ``[1, 62]``."""
    if real <= 0 or not math.isfinite(real):
        raise ArtifactError(f"requantization multiplier {real!r} must be finite and > 0")
    frac, exp = math.frexp(real)  # real = frac * 2^exp, frac in [0.5, 1)
    m = round(frac * (1 << 31))
    if m == 1 << 31:
        m, exp = m // 2, exp + 1
    shift = 31 - exp
    if shift > 62:  # |real| < 2^-31: every output rounds to 0
        return 0, 1
    if shift < 1:
        raise ArtifactError(f"requantization multiplier {real:.3g} is too large (>= 2^30)")
    return m, shift


@dataclass
class LayerPlan:
    """Integer constants of one linear / conv op.

    :param bias: int32 ``(rows,)`` bias in accumulator units ``s_in * s_w``.
    :param mult: int32 ``(rows,)`` and :param shift: ``(rows,)``: the requantization (not for
        the output layer).
    :param out_scale: float32 ``(rows,)`` ``s_in * s_w``: accumulator -> float (output layer).
    :param lo: the clamp's lower bound (0 with a fused ReLU, else -127).
    """

    bias: np.ndarray
    mult: np.ndarray | None
    shift: np.ndarray | None
    out_scale: np.ndarray
    lo: int


@dataclass
class AddPlan:
    """``q = clamp((x * mx + r * mr + 2^(k-1)) >> k)``."""

    mx: int
    mr: int
    k: int


@dataclass
class IntegerPlan:
    """Per op: a :class:`LayerPlan`, an :class:`AddPlan` or ``None``; ``scales[i]`` is the
    scale of the tensor after op ``i`` (``input_scale`` before op 0); ``input_qmax``: the input
    codes' bound (127 or 32767 for float observations, 255 for uint8 images)."""

    input_scale: float
    inv_input_scale: np.float32
    input_qmax: int
    ops: list[Any] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)


def _layer_plan(layer: Layer, s_in: float, s_out: float | None, lo: int, x_max: int) -> LayerPlan:
    s_w = layer.channel_scale().astype(np.float64)
    acc_scale = np.float64(s_in) * s_w
    bias = np.rint(layer.bias.astype(np.float64) / acc_scale)
    # the int32 accumulator must hold bias + sum |w| * max|x| for every row
    bound = np.abs(bias) + np.abs(layer.matrix.astype(np.int64)).sum(axis=1) * x_max
    if bound.max() >= 2**31:
        raise ArtifactError(f"layer {layer.name}: int32 accumulator could overflow")
    mult = shift = None
    if s_out is not None:
        pairs = [quantize_multiplier(float(a / s_out)) for a in acc_scale]
        mult = np.array([p[0] for p in pairs], np.int64)
        shift = np.array([p[1] for p in pairs], np.int64)
    return LayerPlan(bias.astype(np.int64), mult, shift, acc_scale.astype(np.float32), lo)


def integer_plan(art: Artifact) -> IntegerPlan:
    """Derive every integer constant of the integer path from the artifact's float32 scales."""
    if art.integer is None:
        raise ArtifactError("the artifact has no integer calibration: calibrate it first "
                            "(nnc4rl export --integer)")  # fmt: skip
    check_integer_ops(art)
    s = float(art.integer["input_scale"])
    x_max, slots = (255 if art.image else INPUT_QMAX[input_bits(art)]), {}
    plan = IntegerPlan(s, np.float32(1.0 / s), x_max)
    for i, op in enumerate(art.ops):
        kind, entry = op["op"], None
        if kind in ("linear", "conv2d"):
            layer = art.layers[op["layer"]]
            s_out = None if i == art.output_op else float(op["act_scale"])
            lo = 0 if _relu_follows(art, i) else -QMAX
            entry = _layer_plan(layer, s, s_out, lo, x_max)
            s, x_max = (s_out if s_out is not None else s), QMAX
        elif kind == "save":
            slots[op["slot"]] = s
        elif kind == "add":
            s_out = float(op["act_scale"])
            ratios = (s / s_out, slots[op["slot"]] / s_out)
            k = ADD_BITS - math.floor(math.log2(max(ratios)))
            if not 1 <= k <= 40:
                raise ArtifactError(f"op {i}: residual scales {ratios} are too far apart")
            entry = AddPlan(round(ratios[0] * 2**k), round(ratios[1] * 2**k), k)
            s = s_out
        plan.ops.append(entry)
        plan.scales.append(s)
    return plan


# -- the numpy reference -------------------------------------------------------------------------
def quantize_input(art: Artifact, plan: IntegerPlan, obs: np.ndarray) -> np.ndarray:
    """Env observations -> int32 input codes ``(N, *obs.shape)`` (images: the pixel values)."""
    x = network_layout(art, obs)
    if art.image:
        return x.astype(np.int32)
    qmax = np.float32(plan.input_qmax)
    v = np.clip(x.astype(np.float32) * plan.inv_input_scale, -qmax, qmax)
    half = np.where(v >= 0, np.float32(0.5), np.float32(-0.5)).astype(np.float32)
    return np.trunc((v + half).astype(np.float32)).astype(np.int32)


def _requant(acc: np.ndarray, lp: LayerPlan, axis: int) -> np.ndarray:
    shape = [1] * acc.ndim
    shape[axis] = -1
    m, sh = lp.mult.reshape(shape), lp.shift.reshape(shape)
    q = (acc * m + (np.int64(1) << (sh - 1))) >> sh
    return np.clip(q, lp.lo, QMAX)


def _exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer matmul through float64 BLAS: exact, as every partial sum is far below 2^53."""
    return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)


def integer_accumulators(art: Artifact, obs: np.ndarray, plan: IntegerPlan | None = None):
    """Run the integer graph on env observations: the output layer's int32 accumulators
    ``(N, n_outputs)`` (bias included), as int64."""
    plan = plan or integer_plan(art)
    x = quantize_input(art, plan, obs).astype(np.int64)
    slots: dict[str, np.ndarray] = {}
    for i, (op, entry) in enumerate(zip(art.ops, plan.ops, strict=True)):
        kind = op["op"]
        if kind in ("linear", "conv2d"):
            layer = art.layers[op["layer"]]
            if kind == "linear":
                acc = _exact_matmul(x, layer.matrix.T) + entry.bias
            else:
                cols, (n, oh, ow) = conv_columns(x, layer, op["stride"], op["padding"], 0)
                acc = _exact_matmul(cols, layer.matrix.T) + entry.bias
                acc = acc.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)
            if i == art.output_op:
                return acc
            x = _requant(acc, entry, axis=1)
        elif kind == "relu":
            x = np.maximum(x, 0)
        elif kind == "flatten":
            x = x.reshape(x.shape[0], -1)
        elif kind == "maxpool":
            x = maxpool(x, op["kernel"], op["stride"], op["padding"], fill=-QMAX - 1)
        elif kind == "save":
            slots[op["slot"]] = x
        elif kind == "add":
            t = x * entry.mx + slots[op["slot"]] * entry.mr + (1 << (entry.k - 1))
            x = np.clip(t >> entry.k, -QMAX, QMAX)
        elif kind == "tanh":
            raise ArtifactError("tanh before the output layer is unsupported")
    raise ArtifactError("the graph has no output layer")


def integer_outputs(art: Artifact, obs: np.ndarray, plan: IntegerPlan | None = None):
    """Float32 network outputs of the integer path: ``tanh(acc * s)`` (a ``box`` head) or
    ``acc * s``."""
    plan = plan or integer_plan(art)
    acc = integer_accumulators(art, obs, plan)
    y = acc.astype(np.float32) * plan.ops[art.output_op].out_scale
    return np.tanh(y) if art.squashed else y


class IntegerPolicy(Policy):
    """The numpy reference of the full-integer path, with SB3's ``predict``."""

    def __init__(self, art: Artifact):
        plan = integer_plan(art)
        self.plan = plan
        super().__init__(art, lambda obs: integer_outputs(art, obs, plan))

    def accumulators(self, obs: np.ndarray) -> np.ndarray:
        """The output layer's int32 accumulators for a batch of env observations."""
        obs, _ = self._batch(obs)
        return integer_accumulators(self.artifact, obs, self.plan)

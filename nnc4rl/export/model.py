"""The artifact's data model (FORMAT.md "Header", "Ops", "Head"): layers, the layer graph and
its checks.

An :class:`Artifact` holds the integer weight codes, scales and fp32 biases of every Linear /
Conv2d layer, the layer graph (a straight-line program over one activation register plus named
slots for residual adds), the observation preprocessing, the output head (SAC / TQC / TD3 / DDPG:
tanh squashing and rescaling to the action bounds; PPO / A2C: the Gaussian mean action clipped to
the bounds, or the argmax of a discrete policy's logits; DQN: argmax) and, when calibrated, the int8 activation scales of
the full-integer path (``integer``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnc4rl.core.config import ConfigError

FORMAT_NAME = "nnc4rl-policy"
FORMAT_VERSION = 4
# version 1: codes in int8 containers, no integer path; version 2: no integer.input_bits (the
# integer path's input codes are int8); version 3: integer.input_bits (16 for float observations);
# version 4: the algorithms beyond SAC / DQN and the ``clip`` head (PPO / A2C Gaussian policies)
READ_VERSIONS = (1, 2, 3, 4)
# The heads each algorithm's network may have: ``box`` (the graph ends in linear, tanh; the action
# is rescaled to the bounds), ``clip`` (ends in linear: the mean action clipped to the bounds, as
# SB3's predict does for an unsquashed Gaussian), ``argmax`` (ends in linear: greedy index).
ALGO_HEADS: dict[str, tuple[str, ...]] = {
    "sac": ("box",), "tqc": ("box",), "td3": ("box",), "ddpg": ("box",), "dqn": ("argmax",),
    "ppo": ("clip", "argmax"), "a2c": ("clip", "argmax"),
}  # fmt: skip
HEADS = ("box", "clip", "argmax")
# What version 1-3 readers accept: an artifact holding one of these is written as version 3.
V3_ALGOS = ("sac", "dqn")
OPS = ("linear", "conv2d", "relu", "tanh", "flatten", "maxpool", "save", "add")
OBS_DTYPES = ("float32", "float64", "uint8")
MAX_ACTIVATION = 1 << 24  # elements of one activation: what inference and the C buffers hold


class ArtifactError(ConfigError):
    """A model that cannot be exported, or a file that is not a valid artifact (one line)."""


@dataclass
class Layer:
    """One Linear or Conv2d layer of the artifact.

    :param name: the layer's name in the SB3 policy (``latent_pi.0``, ``features_extractor.cnn.0``).
    :param kind: ``linear`` (codes ``(n_out, n_in)``) or ``conv2d`` (``(n_out, n_in, kh, kw)``).
    :param codes: int8 weight codes, zeros included (the dense view of the stored encoding).
    :param scale: float32 scales: shape ``(1,)`` per tensor or ``(n_out,)`` per output channel;
        the fp32 weight is ``codes * scale``.
    :param bias: float32 bias ``(n_out,)`` (zeros when the layer has none).
    :param bits: the grid's bit width (codes lie in ``[-(2^(bits-1)-1), 2^(bits-1)-1]``).
    """

    name: str
    kind: str
    codes: np.ndarray
    scale: np.ndarray
    bias: np.ndarray
    bits: int

    @property
    def rows(self) -> int:
        return int(self.codes.shape[0])

    @property
    def cols(self) -> int:
        return int(self.codes.size // self.codes.shape[0])

    @property
    def matrix(self) -> np.ndarray:
        """Codes as a ``(rows, cols)`` int8 matrix (a conv's columns are ``(c_in, kh, kw)``)."""
        return self.codes.reshape(self.rows, self.cols)

    @property
    def nnz(self) -> int:
        return int(np.count_nonzero(self.codes))

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1 or self.kind == "conv2d"

    def channel_scale(self) -> np.ndarray:
        """The scale of each output channel, float32 ``(rows,)``."""
        return np.broadcast_to(self.scale, (self.rows,)).astype(np.float32)

    def weight(self) -> np.ndarray:
        """Dequantized fp32 weight ``codes * scale`` (scale broadcast over output channels)."""
        s = self.scale.reshape(-1, *([1] * (self.codes.ndim - 1)))
        return (self.codes.astype(np.float32) * s).astype(np.float32)


@dataclass
class Artifact:
    """A deployable compressed policy.

    :param algo: ``sac``, ``tqc``, ``td3``, ``ddpg``, ``dqn``, ``ppo`` or ``a2c`` (``ALGO_HEADS``).
    :param layers: the weighted layers, referenced by index from ``ops``.
    :param ops: the layer graph, run in order on one activation ``x`` (see FORMAT.md). In a
        calibrated artifact, every ``linear`` / ``conv2d`` op but the last and every ``add``
        carries ``act_scale``: the float32 scale of its int8 output.
    :param obs: observation preprocessing: ``shape`` (what the network sees, channels first),
        ``dtype`` (the env's observation dtype: ``float64``, ``float32`` or ``uint8``),
        ``layout`` (``HWC`` if the env yields channels-last images that are transposed to CHW,
        else ``null``) and ``divide`` (255.0 for images, else ``null``).
    :param head: ``{"kind": "box", "low": [...], "high": [...]}`` (SAC / TQC / TD3 / DDPG: the
        last op is ``tanh`` and the action is ``low + 0.5 (y + 1)(high - low)``),
        ``{"kind": "clip", "low": [...], "high": [...]}`` (PPO / A2C: the action is
        ``clip(y, low, high)``) or ``{"kind": "argmax", "n": N}``.
    :param info: free-form provenance (env id, seed, source file, sparsity).
    :param integer: ``None``, or the calibration of the full-integer path: ``input_scale``
        (float32 scale of the input codes; ``1/255`` for uint8 images), ``input_bits`` (16:
        int16 codes of a float observation; 8 for images and for artifacts calibrated before
        the field existed) and ``calibration`` (where the scales come from: env, seeds,
        episodes, observations).
    """

    algo: str
    layers: list[Layer]
    ops: list[dict[str, Any]]
    obs: dict[str, Any]
    head: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
    integer: dict[str, Any] | None = None

    @property
    def bits(self) -> int:
        return max(layer.bits for layer in self.layers)

    @property
    def image(self) -> bool:
        """True for uint8 image observations (pixel values, divided by 255 in the network)."""
        return self.obs.get("dtype") == "uint8"

    @property
    def obs_env_shape(self) -> tuple[int, ...]:
        """Shape of one observation as the env yields it (HWC for Atari frame stacks)."""
        shape = tuple(self.obs["shape"])
        return (shape[1], shape[2], shape[0]) if self.obs.get("layout") == "HWC" else shape

    @property
    def output_op(self) -> int:
        """Index in ``ops`` of the last weighted op (its output is the network output)."""
        return max(i for i, op in enumerate(self.ops) if op.get("op") in ("linear", "conv2d"))

    @property
    def n_outputs(self) -> int:
        """Width of the network output: rows of the layer of the last linear op."""
        last = [op["layer"] for op in self.ops if op.get("op") == "linear"]
        return self.layers[last[-1]].rows if last else 0

    @property
    def continuous(self) -> bool:
        """Whether the head yields a Box action (``box`` or ``clip``), not an index."""
        return self.head["kind"] != "argmax"

    @property
    def squashed(self) -> bool:
        """Whether the network output is ``tanh``'d (a ``box`` head)."""
        return self.head["kind"] == "box"

    @property
    def action_size(self) -> int:
        return 1 if self.head["kind"] == "argmax" else len(self.head["low"])

    def sparsity(self) -> float:
        numel = sum(layer.codes.size for layer in self.layers)
        return 1.0 - sum(layer.nnz for layer in self.layers) / numel

    def activation_shapes(self) -> list[tuple[int, ...]]:
        """Shape of ``x`` after each op (first entry: the preprocessed input); checks the graph."""
        return infer_shapes(self.layers, self.ops, tuple(self.obs["shape"]))

    def check(self) -> list[tuple[int, ...]]:
        """Check the graph, the head and the policy type together; returns the shapes.

        :raises ArtifactError: one line naming the first inconsistency.
        """
        if self.algo not in ALGO_HEADS or self.head.get("kind") not in HEADS:
            raise ArtifactError(f"algo {self.algo!r} / head {self.head.get('kind')!r}")
        if self.head["kind"] not in ALGO_HEADS[self.algo]:
            raise ArtifactError(f"a {self.algo} policy cannot have a {self.head['kind']} head")
        if self.obs.get("dtype") not in OBS_DTYPES:
            raise ArtifactError(f"observation dtype {self.obs.get('dtype')!r} is not one of "
                                f"{', '.join(OBS_DTYPES)}")  # fmt: skip
        if self.image != (self.obs.get("layout") == "HWC" and self.obs.get("divide") == 255.0):
            raise ArtifactError("uint8 observations must be HWC images divided by 255")
        shapes = self.activation_shapes()
        if not any(op["op"] in ("linear", "conv2d") for op in self.ops):
            raise ArtifactError("the graph has no linear/conv2d op")
        tail = [op["op"] for op in self.ops[self.output_op + 1 :]]
        expected = ["tanh"] if self.squashed else []
        if self.ops[self.output_op]["op"] != "linear" or tail != expected:
            raise ArtifactError(
                f"a {self.algo} graph must end in a linear op{' then tanh' * bool(expected)}, "
                f"this one ends in {[op['op'] for op in self.ops[-2:]]}"
            )
        # hidden tanh (SB3's default activation of PPO / A2C) runs in the fp32 paths; the
        # full-integer path refuses it (nnc4rl.export.integer)
        if shapes[-1] != (self.n_outputs,) or (
            self.continuous and len(self.head["low"]) != self.n_outputs
        ) or (self.head["kind"] == "argmax" and self.head.get("n") != self.n_outputs):  # fmt: skip
            raise ArtifactError(f"output shape {shapes[-1]} does not match the head")
        if self.continuous:
            low, high = np.asarray(self.head["low"]), np.asarray(self.head["high"])
            if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(low < high)):
                raise ArtifactError("action bounds must be finite with low < high")
        return shapes


# -- shape inference and graph checks ------------------------------------------------------------
def _out_len(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def infer_shapes(
    layers: list[Layer], ops: list[dict[str, Any]], input_shape: tuple[int, ...]
) -> list[tuple[int, ...]]:
    """Shapes of the activation through ``ops``; raises :class:`ArtifactError` if inconsistent."""
    shape, shapes, slots = tuple(input_shape), [tuple(input_shape)], {}
    for i, op in enumerate(ops):
        kind = op.get("op")
        if kind not in OPS:
            raise ArtifactError(f"op {i} {kind!r} is unknown: allowed ops are {', '.join(OPS)}")
        if kind in ("linear", "conv2d"):
            li = op.get("layer")
            if not isinstance(li, int) or not 0 <= li < len(layers) or layers[li].kind != kind:
                raise ArtifactError(f"op {i} ({kind}) names layer {li!r}, not a {kind} layer")
            layer = layers[li]
        if kind == "linear":
            if len(shape) != 1 or shape[0] != layer.cols:
                raise ArtifactError(
                    f"op {i}: linear {layer.name} expects {layer.cols} inputs, got {shape}"
                )
            shape = (layer.rows,)
        elif kind == "conv2d":
            _, c_in, kh, kw = layer.codes.shape
            (sh, sw), (ph, pw) = op["stride"], op["padding"]
            if len(shape) != 3 or shape[0] != c_in:
                raise ArtifactError(
                    f"op {i}: conv {layer.name} expects {c_in} channels, got {shape}"
                )
            if min(sh, sw) < 1 or min(ph, pw) < 0:
                raise ArtifactError(f"op {i}: conv {layer.name} has stride/padding {op}")
            shape = (layer.rows, _out_len(shape[1], kh, sh, ph), _out_len(shape[2], kw, sw, pw))
        elif kind == "maxpool":
            if len(shape) != 3:
                raise ArtifactError(f"op {i}: maxpool needs a (C, H, W) input, got {shape}")
            (kh, kw), (sh, sw), (ph, pw) = op["kernel"], op["stride"], op["padding"]
            if min(sh, sw) < 1 or min(ph, pw) < 0 or ph >= kh or pw >= kw:
                raise ArtifactError(f"op {i}: maxpool kernel/stride/padding {op} are invalid")
            shape = (shape[0], _out_len(shape[1], kh, sh, ph), _out_len(shape[2], kw, sw, pw))
        elif kind == "flatten":
            shape = (math.prod(shape),)
        elif kind == "save":
            slots[op["slot"]] = shape
        elif kind == "add" and slots.get(op.get("slot")) != shape:
            raise ArtifactError(f"op {i}: add of slot {op.get('slot')!r} does not match {shape}")
        if min(shape) < 1:
            raise ArtifactError(f"op {i} ({kind}) produces the empty shape {shape}")
        if math.prod(shape) > MAX_ACTIVATION:
            raise ArtifactError(
                f"op {i} ({kind}) produces {shape}: at most {MAX_ACTIVATION} elements are allowed"
            )
        shapes.append(shape)
    return shapes

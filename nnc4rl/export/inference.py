"""Reference inference from an artifact in numpy, and the ``predict`` policy wrapper.

Weights stay int8 codes; a layer computes ``y = scale * (codes @ x) + bias`` (per output channel
for convs) with **fp32 activations** and fp32 accumulation, exactly the arithmetic of the
weight-only fake-quant network that was trained and evaluated (its activations are fp32 too).
Results agree with that network up to float rounding order (|diff| ~ 1e-6), not bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from nnc4rl.export.model import Artifact, ArtifactError, Layer


def _windows(x: np.ndarray, kernel, stride, padding, fill: float) -> np.ndarray:
    """``(N, C, H, W)`` -> ``(N, C, OH, OW, kh, kw)`` strided windows of the padded input."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    return sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]


def linear(x: np.ndarray, layer: Layer) -> np.ndarray:
    """``(N, n_in)`` fp32 -> ``(N, n_out)``: ``scale * (x @ codes.T) + bias``."""
    acc = x @ layer.matrix.astype(np.float32).T
    return (acc * layer.scale + layer.bias).astype(np.float32)


def conv_columns(x: np.ndarray, layer: Layer, stride, padding, fill=0.0):
    """im2col: ``(N, C, H, W)`` -> ``((N*OH*OW, C*kh*kw) columns, (N, OH, OW))``."""
    _, c_in, kh, kw = layer.codes.shape
    win = _windows(x, (kh, kw), stride, padding, fill)  # (N, C, OH, OW, kh, kw)
    n, _, oh, ow = win.shape[:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c_in * kh * kw), (n, oh, ow)


def conv2d(x: np.ndarray, layer: Layer, stride, padding) -> np.ndarray:
    """``(N, C, H, W)`` fp32 -> ``(N, O, OH, OW)``; per-output-channel scales."""
    cols, (n, oh, ow) = conv_columns(x, layer, stride, padding)
    acc = cols @ layer.matrix.astype(np.float32).T  # (N*OH*OW, O)
    y = acc * layer.channel_scale() + layer.bias
    return np.ascontiguousarray(y.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2), np.float32)


def maxpool(x: np.ndarray, kernel, stride, padding, fill=-np.inf) -> np.ndarray:
    """Max over windows; the padding (``fill``) never wins."""
    return _windows(x, kernel, stride, padding, fill).max(axis=(4, 5))


def network_layout(art: Artifact, obs: np.ndarray) -> np.ndarray:
    """Env observations ``(N, *obs_env_shape)`` in the network's layout ``(N, *obs.shape)``
    (HWC images -> CHW; channels-first images pass), values untouched; a shape that fits
    neither raises ``ArtifactError``."""
    x = np.asarray(obs)
    if art.obs.get("layout") == "HWC" and x.shape[1:] == art.obs_env_shape:
        x = x.transpose(0, 3, 1, 2)
    if x.shape[1:] != tuple(art.obs["shape"]):
        raise ArtifactError(
            f"observation shape {x.shape[1:]} does not fit the policy: expected {art.obs_env_shape}"
        )
    return x


def preprocess(art: Artifact, obs: np.ndarray) -> np.ndarray:
    """Env observations ``(N, *obs_env_shape)`` -> the network input ``(N, *obs.shape)`` fp32.

    Images: uint8 HWC -> CHW, then ``/ 255`` in float32 (as SB3's ``preprocess_obs``).
    Accepts channels-first images too.
    """
    x = network_layout(art, obs).astype(np.float32)
    if art.obs.get("divide"):
        x = x / np.float32(art.obs["divide"])
    return x


def run_op(art: Artifact, op: dict, x: np.ndarray, slots: dict[str, np.ndarray]) -> np.ndarray:
    """One op of the fp32 (weight-only) graph on the batch ``x``; ``save`` fills ``slots``."""
    kind = op["op"]
    if kind == "linear":
        return linear(x, art.layers[op["layer"]])
    if kind == "conv2d":
        return conv2d(x, art.layers[op["layer"]], op["stride"], op["padding"])
    if kind == "relu":
        return np.maximum(x, np.float32(0))
    if kind == "tanh":
        return np.tanh(x)
    if kind == "flatten":
        return x.reshape(x.shape[0], -1)
    if kind == "maxpool":
        return maxpool(x, op["kernel"], op["stride"], op["padding"])
    if kind == "save":
        slots[op["slot"]] = x
        return x
    if kind == "add":
        return x + slots[op["slot"]]
    raise ArtifactError(f"unknown op {kind!r}")


def forward(art: Artifact, x: np.ndarray) -> np.ndarray:
    """Run the graph on preprocessed inputs ``(N, *obs.shape)``: returns ``(N, n_outputs)``.

    ``box`` head: the squashed action in [-1, 1] (after ``tanh``); ``clip``: the mean action;
    ``argmax``: the Q-values (DQN) or logits (PPO / A2C).
    """
    slots: dict[str, np.ndarray] = {}
    for op in art.ops:
        x = run_op(art, op, x, slots)
    return x


def head(art: Artifact, y: np.ndarray) -> np.ndarray:
    """Network outputs -> env actions: argmax (int64 ``(N,)``), rescaled box or clipped mean
    ``(N, A)``."""
    if art.head["kind"] == "argmax":
        return np.argmax(y, axis=1)
    low = np.asarray(art.head["low"], np.float32)
    high = np.asarray(art.head["high"], np.float32)
    if art.head["kind"] == "clip":  # SB3's predict for an unsquashed Gaussian: np.clip
        return np.clip(y.astype(np.float32), low, high)
    return low + (0.5 * (y.astype(np.float32) + 1.0) * (high - low))


class Policy:
    """A policy with SB3's ``predict`` interface around a batch function of env observations.

    :param art: the artifact (observation shape and head).
    :param outputs: ``(N, *obs_env_shape)`` observations -> ``(N, n_outputs)`` network outputs.
    """

    def __init__(self, art: Artifact, outputs: Callable[[np.ndarray], np.ndarray]):
        self.artifact = art
        self._outputs = outputs

    def outputs(self, obs: np.ndarray) -> np.ndarray:
        """Raw network outputs (SAC: tanh-squashed action, PPO: mean action or logits, DQN:
        Q-values) for a batch."""
        obs, _ = self._batch(obs)
        return self._outputs(obs)

    def _batch(self, obs) -> tuple[np.ndarray, bool]:
        obs = np.asarray(obs)
        single = obs.shape in (self.artifact.obs_env_shape, tuple(self.artifact.obs["shape"]))
        return (obs[None] if single else obs), single

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """SB3-compatible: actions for one observation or a batch (always deterministic)."""
        obs, single = self._batch(observation)
        actions = head(self.artifact, self._outputs(obs))
        return (actions[0] if single else actions), None


class ArtifactPolicy(Policy):
    """The numpy reference policy of an artifact (see the module docstring for its arithmetic)."""

    def __init__(self, art: Artifact):
        super().__init__(art, lambda obs: forward(art, preprocess(art, obs)))

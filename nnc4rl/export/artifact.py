"""The deployment artifact: a compressed SAC actor or DQN Q-network as one versioned ``.npz``.

An :class:`Artifact` holds the integer weight codes, scales and fp32 biases of every Linear /
Conv2d layer, the layer graph (a straight-line program over one activation register plus named
slots for residual adds), the observation preprocessing and the output head (SAC: tanh squashing
and rescaling to the action bounds; DQN: argmax). The file layout is documented in
``nnc4rl/export/FORMAT.md``; :func:`save_artifact` writes it and :func:`load_artifact` reads and
checks it. :func:`artifact_from_sb3` builds one from a trained SB3 model.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnc4rl.config import ConfigError
from nnc4rl.quant import qmax

FORMAT_NAME = "nnc4rl-policy"
FORMAT_VERSION = 1
GRID_TOLERANCE = 1e-3  # largest distance of w / scale from an integer that counts as "on grid"
OPS = ("linear", "conv2d", "relu", "tanh", "flatten", "maxpool", "save", "add")


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

    def weight(self) -> np.ndarray:
        """Dequantized fp32 weight ``codes * scale`` (scale broadcast over output channels)."""
        s = self.scale.reshape(-1, *([1] * (self.codes.ndim - 1)))
        return (self.codes.astype(np.float32) * s).astype(np.float32)


@dataclass
class Artifact:
    """A deployable compressed policy.

    :param algo: ``sac`` or ``dqn``.
    :param layers: the weighted layers, referenced by index from ``ops``.
    :param ops: the layer graph, run in order on one activation ``x`` (see FORMAT.md).
    :param obs: observation preprocessing: ``shape`` (what the network sees, channels first),
        ``dtype`` (``float32`` or ``uint8``), ``layout`` (``HWC`` if the env yields
        channels-last images that are transposed to CHW, else ``null``) and ``divide``
        (255.0 for images, else ``null``).
    :param head: ``{"kind": "box", "low": [...], "high": [...]}`` (SAC: the last op is ``tanh``
        and the action is ``low + 0.5 (y + 1)(high - low)``) or ``{"kind": "argmax", "n": N}``.
    :param info: free-form provenance (env id, source file, sparsity).
    """

    algo: str
    layers: list[Layer]
    ops: list[dict[str, Any]]
    obs: dict[str, Any]
    head: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def bits(self) -> int:
        return max(layer.bits for layer in self.layers)

    @property
    def obs_env_shape(self) -> tuple[int, ...]:
        """Shape of one observation as the env yields it (HWC for Atari frame stacks)."""
        shape = tuple(self.obs["shape"])
        return (shape[1], shape[2], shape[0]) if self.obs.get("layout") == "HWC" else shape

    @property
    def n_outputs(self) -> int:
        """Width of the network output: rows of the layer of the last linear op."""
        last = [op["layer"] for op in self.ops if op.get("op") == "linear"]
        return self.layers[last[-1]].rows if last else 0

    @property
    def action_size(self) -> int:
        return 1 if self.head["kind"] == "argmax" else len(self.head["low"])

    def sparsity(self) -> float:
        numel = sum(layer.codes.size for layer in self.layers)
        return 1.0 - sum(layer.nnz for layer in self.layers) / numel

    def activation_shapes(self) -> list[tuple[int, ...]]:
        """Shape of ``x`` after each op (first entry: the preprocessed input); checks the graph."""
        return infer_shapes(self.layers, self.ops, tuple(self.obs["shape"]))


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
            shape = (layer.rows, _out_len(shape[1], kh, sh, ph), _out_len(shape[2], kw, sw, pw))
        elif kind == "maxpool":
            if len(shape) != 3:
                raise ArtifactError(f"op {i}: maxpool needs a (C, H, W) input, got {shape}")
            (kh, kw), (sh, sw), (ph, pw) = op["kernel"], op["stride"], op["padding"]
            shape = (shape[0], _out_len(shape[1], kh, sh, ph), _out_len(shape[2], kw, sw, pw))
        elif kind == "flatten":
            shape = (math.prod(shape),)
        elif kind == "save":
            slots[op["slot"]] = shape
        elif kind == "add" and slots.get(op.get("slot")) != shape:
            raise ArtifactError(f"op {i}: add of slot {op.get('slot')!r} does not match {shape}")
        if min(shape) < 1:
            raise ArtifactError(f"op {i} ({kind}) produces the empty shape {shape}")
        shapes.append(shape)
    return shapes


# -- building from an SB3 model ------------------------------------------------------------------
def grid_codes(weight: np.ndarray, bits: int, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Recover ``(codes int8, scale float32)`` of a weight already on a ``bits``-bit grid.

    ``scale = max|w| / qmax`` per tensor or per output channel (as in training); raises
    :class:`ArtifactError` if some ``w / scale`` is more than ``GRID_TOLERANCE`` from an integer.
    Among the float32 neighbours of the scale, one for which ``codes * scale`` reproduces the
    weight bit for bit is preferred.
    """
    w = np.asarray(weight, dtype=np.float32)
    rows = w.reshape(w.shape[0], -1) if per_channel else w.reshape(1, -1)
    amax = np.abs(rows).max(axis=1)
    scale = np.where(amax > 0, amax / np.float32(qmax(bits)), np.float32(1.0)).astype(np.float32)
    exact = rows.astype(np.float64) / scale.astype(np.float64)[:, None]
    codes = np.rint(exact)
    off = float(np.abs(exact - codes).max()) if exact.size else 0.0
    if off > GRID_TOLERANCE or np.abs(codes).max(initial=0) > qmax(bits):
        raise ArtifactError(f"off-grid by {off:.3g} at {bits} bits")
    codes = codes.astype(np.int8)
    for r in range(rows.shape[0]):  # prefer a scale that reproduces the weights exactly
        for cand in (scale[r], *_neighbours(scale[r])):
            if np.array_equal(codes[r].astype(np.float32) * cand, rows[r]):
                scale[r] = cand
                break
    return codes.reshape(w.shape), scale


def _neighbours(x: np.float32, n: int = 3) -> list[np.float32]:
    out, up, down = [], x, x
    for _ in range(n):
        up, down = np.nextafter(up, np.float32(np.inf)), np.nextafter(down, np.float32(0))
        out += [up, down]
    return out


class _Tracer:
    """Turns the modules of an SB3 network into artifact ops and layers (forward order)."""

    def __init__(self, root, bits_candidates: list[int]):
        self.names = {id(m): n for n, m in root.named_modules()}
        self.bits_candidates = bits_candidates
        self.layers: list[Layer] = []
        self.ops: list[dict[str, Any]] = []
        self._slot = 0

    def _add_layer(self, module, kind: str) -> int:
        name = self.names.get(id(module), type(module).__name__)
        w = module.weight.detach().cpu().float().numpy()
        b = module.bias
        bias = (
            b.detach().cpu().float().numpy() if b is not None else np.zeros(w.shape[0], np.float32)
        )
        per_channel = kind == "conv2d"
        errors = []
        for bits in self.bits_candidates:
            try:
                codes, scale = grid_codes(w, bits, per_channel)
                break
            except ArtifactError as err:
                errors.append(str(err))
        else:
            tried = ", ".join(str(b) for b in self.bits_candidates)
            raise ArtifactError(
                f"layer {name} is not quantized (weights are not on a {tried}-bit grid: "
                f"{errors[0]}); only models trained with --quantize can be exported"
            )
        self.layers.append(Layer(name, kind, codes, scale, bias.astype(np.float32), bits))
        return len(self.layers) - 1

    def visit(self, m) -> None:  # noqa: C901 - one branch per supported module type
        from torch import nn

        cls = type(m).__name__
        if isinstance(m, nn.Sequential):
            for child in m:
                self.visit(child)
        elif isinstance(m, nn.Linear):
            self.ops.append({"op": "linear", "layer": self._add_layer(m, "linear")})
        elif isinstance(m, nn.Conv2d):
            if m.groups != 1 or tuple(m.dilation) != (1, 1) or m.padding_mode != "zeros":
                raise ArtifactError(
                    f"conv {self.names.get(id(m))}: groups/dilation/padding mode unsupported"
                )
            if isinstance(m.padding, str):
                raise ArtifactError(f"conv {self.names.get(id(m))}: string padding is unsupported")
            layer = self._add_layer(m, "conv2d")
            self.ops.append(
                {
                    "op": "conv2d",
                    "layer": layer,
                    "stride": list(m.stride),
                    "padding": list(m.padding),
                }
            )
        elif isinstance(m, nn.ReLU):
            self.ops.append({"op": "relu"})
        elif isinstance(m, nn.Tanh):
            self.ops.append({"op": "tanh"})
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise ArtifactError("only Flatten(start_dim=1) is supported")
            self.ops.append({"op": "flatten"})
        elif isinstance(m, nn.MaxPool2d):
            if m.ceil_mode or m.dilation not in (1, (1, 1)):
                raise ArtifactError("MaxPool2d with ceil_mode or dilation is unsupported")
            pair = lambda v: list(v) if isinstance(v, (tuple, list)) else [v, v]  # noqa: E731
            self.ops.append(
                {
                    "op": "maxpool",
                    "kernel": pair(m.kernel_size),
                    "stride": pair(m.stride),
                    "padding": pair(m.padding),
                }  # fmt: skip
            )
        elif cls == "ResidualBlock":  # nnc4rl.networks: x + conv1(relu(conv0(relu(x))))
            slot = f"r{self._slot}"
            self._slot += 1
            self.ops.append({"op": "save", "slot": slot})
            self.ops.append({"op": "relu"})
            self.visit(m.conv0)
            self.ops.append({"op": "relu"})
            self.visit(m.conv1)
            self.ops.append({"op": "add", "slot": slot})
        elif cls == "ImpalaStage":  # conv -> maxpool -> res0 -> res1
            for child in (m.conv, m.pool, m.res0, m.res1):
                self.visit(child)
        elif cls in ("NatureCNN", "ImpalaCNN"):  # cnn Sequential then linear Sequential
            self.visit(m.cnn)
            self.visit(m.linear)
        elif cls == "FlattenExtractor":
            self.ops.append({"op": "flatten"})
        else:
            raise ArtifactError(
                f"module {cls} ({self.names.get(id(m))}) is not supported by export"
            )


def artifact_from_sb3(model, bits: int | None = None, info: dict | None = None) -> Artifact:
    """Build the artifact of a trained, quantized SB3 ``SAC`` (actor) or ``DQN`` (Q-network).

    :param bits: the grid's bit width; ``None`` tries 8, 7, ..., 2 and takes the first grid that
        holds every weight of a layer.
    :raises ArtifactError: if a weight is not on the grid (the model was not quantized) or the
        network has a module export does not know.
    """
    from gymnasium import spaces
    from stable_baselines3 import DQN, SAC
    from stable_baselines3.common.preprocessing import is_image_space

    candidates = [bits] if bits is not None else list(range(8, 1, -1))
    policy = model.policy
    space = policy.observation_space
    if not isinstance(space, spaces.Box):
        raise ArtifactError(f"observation space {space} is unsupported: a Box is required")
    image = is_image_space(space) and len(space.shape) == 3
    if image and not policy.normalize_images:
        raise ArtifactError("image observations without normalize_images are unsupported")
    obs = {
        "shape": list(space.shape),
        "dtype": "uint8" if image else "float32",
        "layout": "HWC" if image else None,
        "divide": 255.0 if image else None,
    }
    if isinstance(model, SAC):
        actor = policy.actor
        if actor.use_sde:
            raise ArtifactError("SAC with gSDE (use_sde=True) is unsupported")
        tracer = _Tracer(actor, candidates)
        for part in (actor.features_extractor, actor.latent_pi, actor.mu):
            tracer.visit(part)
        tracer.ops.append({"op": "tanh"})
        low, high = model.action_space.low, model.action_space.high
        head = {"kind": "box", "low": low.astype(np.float32).tolist(),
                "high": high.astype(np.float32).tolist()}  # fmt: skip
        algo = "sac"
    elif isinstance(model, DQN):
        q_net = policy.q_net
        tracer = _Tracer(q_net, candidates)
        tracer.visit(q_net.features_extractor)
        tracer.visit(q_net.q_net)
        head = {"kind": "argmax", "n": int(model.action_space.n)}
        algo = "dqn"
    else:
        raise ArtifactError(f"model type {type(model).__name__} is unsupported: use SAC or DQN")
    if not tracer.layers:
        raise ArtifactError("the network has no Linear/Conv2d layer")
    art = Artifact(algo, tracer.layers, tracer.ops, obs, head, dict(info or {}))
    art.activation_shapes()
    art.info.setdefault("sparsity", round(art.sparsity(), 6))
    art.info.setdefault("bits", art.bits)
    return art


def load_sb3_model(path: str | Path):
    """Load an SB3 ``model.zip`` (SAC or DQN) on the CPU without allocating its replay buffer."""
    from stable_baselines3 import DQN, SAC

    from nnc4rl.measure import load_policy_state

    path = Path(path)
    try:
        keys = load_policy_state(path).keys()
    except Exception as err:  # noqa: BLE001 - any unreadable file is bad input
        raise ArtifactError(
            f"{str(path)!r} is not a readable SB3 model.zip ({type(err).__name__})"
        ) from None
    algo_class = SAC if any(k.startswith("actor.") for k in keys) else DQN
    if algo_class is DQN and not any(k.startswith("q_net.") for k in keys):
        raise ArtifactError(f"{str(path)!r} holds neither a SAC actor nor a DQN q_net")
    return algo_class.load(path, device="cpu", custom_objects={"buffer_size": 1})


def artifact_from_path(source: str | Path, bits: int | None = None) -> Artifact:
    """The artifact of a run folder (``model.zip`` inside), a ``model.zip`` or an artifact ``.npz``.

    A run folder's ``summary.json`` supplies ``bits`` (and an error if it says unquantized).
    """
    source = Path(source)
    if source.is_dir():
        summary_path, source = source / "summary.json", source / "model.zip"
        if summary_path.exists():
            summary = json.loads(summary_path.read_text())
            if not summary.get("quantized", True):
                raise ArtifactError(
                    f"run {str(source.parent)!r} was not quantized (bits=32): only models "
                    "trained with --quantize can be exported"
                )
            bits = bits or summary.get("bits")
    if not source.exists():
        raise ArtifactError(f"{str(source)!r} does not exist: give a run folder, model.zip or .npz")
    if source.suffix == ".npz":
        return load_artifact(source)
    model = load_sb3_model(source)
    return artifact_from_sb3(model, bits, info={"source": source.name})


# -- file format ---------------------------------------------------------------------------------
_DTYPES = {"i1": np.dtype("i1"), "u1": np.dtype("u1"), "u2": np.dtype("<u2"), "u4": np.dtype("<u4"),
           "f4": np.dtype("<f4")}  # fmt: skip


def _encode_layer(layer: Layer) -> tuple[str, dict[str, np.ndarray]]:
    """Cheapest encoding of a layer's codes (nnc4rl.size's choice) and its arrays."""
    import torch

    from nnc4rl.size import layer_size

    m = layer.matrix
    enc = layer_size(layer.name, torch.from_numpy(m.copy()), None, layer.bits, False).encoding
    nz = m != 0
    arrays: dict[str, np.ndarray] = {}
    if enc == "dense":
        arrays["values"] = m.reshape(-1)
    elif enc == "bitmask":
        arrays["mask"] = np.packbits(nz.reshape(-1))
        arrays["values"] = m[nz]
    else:
        row_ptr = np.concatenate([[0], np.cumsum(nz.sum(axis=1))])
        rows, cols = np.nonzero(nz)
        arrays["row_ptr"] = row_ptr.astype("<u2" if row_ptr[-1] <= 0xFFFF else "<u4")
        arrays["col_idx"] = cols.astype(np.uint8 if enc == "csr8" else "<u2")
        arrays["values"] = m[rows, cols]
    arrays["scale"] = layer.scale.astype("<f4")
    arrays["bias"] = layer.bias.astype("<f4")
    return enc, arrays


def _short(dtype: np.dtype) -> str:
    return np.dtype(dtype).str[1:]


def encode(art: Artifact) -> tuple[dict[str, Any], bytes]:
    """The artifact's JSON header and binary blob (the two members of the ``.npz``)."""
    blob, layers = bytearray(), []
    for layer in art.layers:
        enc, arrays = _encode_layer(layer)
        tensors = {}
        for key, arr in arrays.items():
            tensors[key] = [len(blob), int(arr.size), _short(arr.dtype)]
            blob += np.ascontiguousarray(arr).tobytes()
        layers.append(
            {
                "name": layer.name,
                "kind": layer.kind,
                "shape": list(layer.codes.shape),
                "bits": layer.bits,
                "encoding": enc,
                "nnz": layer.nnz,
                "tensors": tensors,
            }  # fmt: skip
        )
    header = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "algo": art.algo,
        "obs": art.obs,
        "head": art.head,
        "layers": layers,
        "ops": art.ops,
        "info": art.info,
    }
    return header, bytes(blob)


def save_artifact(art: Artifact, path: str | Path) -> int:
    """Write ``art`` to ``path`` (a zip of ``header.npy`` + ``blob.npy``); returns bytes written."""
    header, blob = encode(art)
    text = json.dumps(header, separators=(",", ":")).encode()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(
        buf, header=np.frombuffer(text, np.uint8), blob=np.frombuffer(blob, np.uint8)
    )
    path.write_bytes(buf.getvalue())
    return path.stat().st_size


def _bad(path: Path, why: str) -> ArtifactError:
    return ArtifactError(f"{str(path)!r} is not a valid {FORMAT_NAME} artifact: {why}")


def _decode_layer(entry: dict, blob: np.ndarray, path: Path) -> Layer:
    def get(key: str) -> np.ndarray:
        off, count, code = entry["tensors"][key]
        dtype = _DTYPES[code]
        end = off + count * dtype.itemsize
        if not 0 <= off <= end <= blob.size:
            raise _bad(path, f"tensor {entry['name']}.{key} lies outside the blob")
        return np.frombuffer(blob[off:end].tobytes(), dtype=dtype)

    shape = tuple(int(s) for s in entry["shape"])
    kind, enc = entry["kind"], entry["encoding"]
    if kind not in ("linear", "conv2d") or len(shape) != (2 if kind == "linear" else 4):
        raise _bad(path, f"layer {entry['name']}: kind {kind!r} with shape {shape}")
    rows, cols = shape[0], math.prod(shape[1:])
    values = get("values")
    if values.dtype != np.int8:
        raise _bad(path, f"layer {entry['name']}: values must be int8")
    if enc == "dense":
        if values.size != rows * cols:
            raise _bad(path, f"layer {entry['name']}: dense values of the wrong size")
        m = values.reshape(rows, cols)
    elif enc == "bitmask":
        mask = np.unpackbits(get("mask"), count=rows * cols).astype(bool)
        if mask.sum() != values.size or get("mask").size != math.ceil(rows * cols / 8):
            raise _bad(path, f"layer {entry['name']}: bitmask does not match the values")
        m = np.zeros(rows * cols, np.int8)
        m[mask] = values
        m = m.reshape(rows, cols)
    elif enc in ("csr8", "csr16"):
        row_ptr, col_idx = get("row_ptr").astype(np.int64), get("col_idx").astype(np.int64)
        ok = (
            row_ptr.size == rows + 1 and row_ptr[0] == 0 and row_ptr[-1] == values.size
            and np.all(np.diff(row_ptr) >= 0) and col_idx.size == values.size
            and (col_idx.size == 0 or col_idx.max() < cols)
        )  # fmt: skip
        if not ok:
            raise _bad(path, f"layer {entry['name']}: inconsistent CSR indices")
        m = np.zeros((rows, cols), np.int8)
        m[np.repeat(np.arange(rows), np.diff(row_ptr)), col_idx] = values
    else:
        raise _bad(path, f"layer {entry['name']}: unknown encoding {enc!r}")
    scale, bias = get("scale").astype(np.float32), get("bias").astype(np.float32)
    if scale.size not in (1, rows) or bias.size != rows or not np.all(np.isfinite(scale)):
        raise _bad(path, f"layer {entry['name']}: scale/bias of the wrong size")
    bits = int(entry["bits"])
    if not 2 <= bits <= 8 or np.abs(m.astype(np.int16)).max(initial=0) > qmax(bits):
        raise _bad(path, f"layer {entry['name']}: codes exceed the {bits}-bit grid")
    return Layer(entry["name"], kind, m.reshape(shape).copy(), scale, bias, bits)


def load_artifact(path: str | Path) -> Artifact:
    """Read and check an artifact written by :func:`save_artifact`.

    :raises ArtifactError: one line saying what is wrong (not a zip, wrong format name or
        version, inconsistent tensors or graph).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            text, blob = z["header"].tobytes(), z["blob"]
        header = json.loads(text)
    except FileNotFoundError:
        raise ArtifactError(f"{str(path)!r} does not exist") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as err:
        raise _bad(path, f"unreadable ({type(err).__name__})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise _bad(
            path, f"format is {header.get('format') if isinstance(header, dict) else None!r}"
        )
    if header.get("version") != FORMAT_VERSION:
        raise _bad(
            path,
            f"version {header.get('version')!r} is not supported (this reads {FORMAT_VERSION})",
        )
    try:
        layers = [_decode_layer(e, blob, path) for e in header["layers"]]
        art = Artifact(header["algo"], layers, header["ops"], header["obs"], header["head"],
                       header.get("info", {}))  # fmt: skip
        if art.algo not in ("sac", "dqn") or art.head.get("kind") not in ("box", "argmax"):
            raise _bad(path, f"algo {art.algo!r} / head {art.head.get('kind')!r}")
        shapes = art.activation_shapes()
    except ArtifactError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise _bad(path, f"malformed header ({type(err).__name__}: {err})") from None
    if shapes[-1] != (art.n_outputs,) or (
        art.head["kind"] == "box" and len(art.head["low"]) != art.n_outputs
    ):
        raise _bad(path, f"output shape {shapes[-1]} does not match the head")
    return art

"""The artifact header as a schema (FORMAT.md "Header", "Tensors"), checked before any allocation.

A ``policy.npz`` is meant to be shared, so its header is untrusted input: its strings reach
generated C, ONNX metadata and printed output, and its shapes and counts decide how much memory
the reader allocates. :func:`check_header` checks every key against a closed schema (types,
names, bounded sizes, element counts consistent with shape and encoding, byte ranges inside the
blob and disjoint) using the header and the blob's length only; :func:`load_artifact
<nnc4rl.export.codec.load_artifact>` runs it before decoding a single tensor, and
:func:`save_artifact <nnc4rl.export.codec.save_artifact>` before writing, so the writer never
produces what the reader refuses. Every failure is one :class:`ArtifactError` line naming the
field, e.g. ``layers[0].name='a */ int x; /* b' is invalid: ...``.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from nnc4rl.export.model import (
    ALGO_HEADS,
    FORMAT_NAME,
    HEADS,
    MAX_ACTIVATION,
    OBS_DTYPES,
    OPS,
    READ_VERSIONS,
    V3_ALGOS,
    ArtifactError,
    Layer,
    infer_shapes,
)

# Names (layers, info keys, slots): what a PyTorch module path is made of. No character that
# could end a C comment, start a preprocessor line or break out of a string.
NAME = re.compile(r"[A-Za-z0-9_.]{1,128}")
# Free text (info values such as the source file name): no '*', quotes, '#', backslash, '<>',
# '`', '$' or control characters, so it cannot terminate a comment, a string or a markdown cell.
TEXT = re.compile(r"[A-Za-z0-9 _.,:;/+=@()\[\]-]{0,256}")
# A gymnasium id without gymnasium's "module:Env" form, which imports ``module`` when made.
ENV_ID = re.compile(r"[A-Za-z0-9_./-]{1,128}")

MAX_LAYERS = 256
MAX_OPS = 4096
MAX_DIM = 1 << 20  # one axis of a weight or observation shape
# rows * cols summed over layers: the decoded int8 codes (16 MiB; 64 MiB as fp32 weights), 8x
# the largest network of the paper (the IMPALA ResNet)
MAX_WEIGHTS = 1 << 24
MAX_WINDOW = 1024  # kernel, stride and padding of conv / max-pool ops
MAX_OUTPUTS = 1 << 16  # action dimensions / discrete actions
MAX_INFO = 64  # keys of info and integer.calibration, items of a list value
MAX_BLOB_BYTES = 1 << 28  # blob.npy (256 MiB); also checked on the zip directory before reading
MAX_HEADER_BYTES = 1 << 20  # header.npy (1 MiB of JSON)

_ONE = np.ones(1, np.float32)
_TOP = {"format", "version", "algo", "obs", "head", "layers", "ops"}
_TOP_OPTIONAL = {"info", "integer"}
_LAYER = {"name", "kind", "shape", "bits", "encoding", "nnz", "tensors"}
TENSORS = {
    "dense": ("values", "scale", "bias"),
    "bitmask": ("mask", "values", "scale", "bias"),
    "csr8": ("row_ptr", "col_idx", "values", "scale", "bias"),
    "csr16": ("row_ptr", "col_idx", "values", "scale", "bias"),
}
ITEMSIZE = {"i1": 1, "u1": 1, "u2": 2, "u4": 4, "f4": 4}
_OP_FIELDS = {
    "linear": {"layer", "act_scale"},
    "conv2d": {"layer", "stride", "padding", "act_scale"},
    "maxpool": {"kernel", "stride", "padding"},
    "save": {"slot"},
    "add": {"slot", "act_scale"},
}


def safe_text(text: str) -> str:
    """``text`` with every character that :data:`TEXT` does not allow replaced by ``_`` (what a
    writer records as provenance, e.g. a source file name)."""
    return re.sub(r"[^A-Za-z0-9 _.,:;/+=@()\[\]-]", "_", text)[:256]


def _show(value: Any) -> str:
    """``repr`` of a bad value, cut to one short line (repr escapes newlines and controls)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bad(field: str, value: Any, allowed: str) -> ArtifactError:
    return ArtifactError(f"{field}={_show(value)} is invalid: {allowed}")


def _int(value: Any, field: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _bad(field, value, f"an integer in {lo}..{hi} is required")
    return value


def _number(value: Any, field: str, positive: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or (positive and value <= 0):
        raise _bad(field, value, f"a finite{' positive' if positive else ''} number is required")
    return float(value)


def _str(value: Any, field: str, pattern: re.Pattern, what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _bad(field, value, what)
    return value


def _name(value: Any, field: str) -> str:
    return _str(value, field, NAME, "1 to 128 of A-Z a-z 0-9 _ . are allowed")


def _choice(value: Any, field: str, allowed: tuple) -> Any:
    # the type too: JSON's 3.0 or true is not the version 3 or the bits 1
    if not any(type(value) is type(a) and value == a for a in allowed):
        raise _bad(field, value, f"one of {', '.join(map(repr, allowed))} is allowed")
    return value


def _dict(value: Any, field: str, required: set, optional: set = frozenset()) -> dict:
    """``value`` as a dict with all of ``required`` and nothing outside ``required | optional``."""
    if not isinstance(value, dict):
        raise _bad(field, value, "an object is required")
    missing = sorted(required - value.keys())
    if missing:
        raise ArtifactError(f"{field}.{missing[0]} is missing")
    extra = sorted(str(k) for k in value.keys() - required - optional)
    if extra:
        allowed = ", ".join(sorted(required | optional))
        raise ArtifactError(f"{field} has the unknown key {_show(extra[0])}: allowed are {allowed}")
    return value


def _list(value: Any, field: str, lo: int, hi: int) -> list:
    if not isinstance(value, list) or not lo <= len(value) <= hi:
        raise _bad(field, value, f"a list of {lo}..{hi} items is required")
    return value


def _pair(value: Any, field: str, lo: int) -> list[int]:
    return [
        _int(v, f"{field}[{j}]", lo, MAX_WINDOW) for j, v in enumerate(_list(value, field, 2, 2))
    ]


def _scalar(value: Any, field: str) -> None:
    """An info value: text, a finite number, a bool or null."""
    if isinstance(value, str):
        _str(value, field, TEXT, "text of at most 256 of A-Z a-z 0-9 space _ . , : ; / + = @ ( ) "
             "[ ] - is allowed")  # fmt: skip
    elif value is not None and not isinstance(value, bool):
        _number(value, field)


def check_obs(obs: Any) -> None:
    obs = _dict(obs, "obs", {"shape", "dtype", "layout", "divide"})
    shape = _list(obs["shape"], "obs.shape", 1, 3)
    for j, n in enumerate(shape):
        _int(n, f"obs.shape[{j}]", 1, MAX_DIM)
    if math.prod(shape) > MAX_ACTIVATION:
        raise _bad("obs.shape", shape, f"at most {MAX_ACTIVATION} elements are allowed")
    _choice(obs["dtype"], "obs.dtype", OBS_DTYPES)
    _choice(obs["layout"], "obs.layout", (None, "HWC"))
    if obs["layout"] == "HWC" and len(shape) != 3:
        raise _bad("obs.shape", shape, "an HWC image needs a (C, H, W) shape")
    if obs["divide"] is not None:
        _number(obs["divide"], "obs.divide", positive=True)


def check_head(head: Any) -> None:
    if not isinstance(head, dict):
        raise _bad("head", head, "an object is required")
    kind = _choice(head.get("kind"), "head.kind", HEADS)
    if kind == "argmax":
        _int(_dict(head, "head", {"kind", "n"})["n"], "head.n", 1, MAX_OUTPUTS)
        return
    _dict(head, "head", {"kind", "low", "high"})
    for key in ("low", "high"):
        for j, v in enumerate(_list(head[key], f"head.{key}", 1, MAX_OUTPUTS)):
            _number(v, f"head.{key}[{j}]")


def _tensor_dtypes(key: str, enc: str, bits: int, version: int) -> tuple[str, ...]:
    """The dtype codes a tensor may have (FORMAT.md "Tensors")."""
    if key == "values":
        return ("i1", f"p{bits}") if version >= 2 and bits < 8 else ("i1",)
    return {"mask": ("u1",), "row_ptr": ("u2", "u4"), "col_idx": ("u1",) if enc == "csr8" else
            ("u2",), "scale": ("f4",), "bias": ("f4",)}[key]  # fmt: skip


def _tensor_count(key: str, enc: str, rows: int, cols: int, nnz: int) -> tuple[int, ...]:
    """The element counts a tensor may have, from its layer's shape, encoding and nnz."""
    return {"values": (rows * cols if enc == "dense" else nnz,), "mask": (math.ceil(rows * cols / 8),),
            "row_ptr": (rows + 1,), "col_idx": (nnz,), "scale": (1, rows),
            "bias": (rows,)}[key]  # fmt: skip


def check_layer(entry: Any, field: str, version: int, blob_size: int) -> list[tuple]:
    """One ``layers[i]`` entry; returns its tensors' byte ranges ``(start, end, name)``."""
    entry = _dict(entry, field, _LAYER)
    _name(entry["name"], f"{field}.name")
    kind = _choice(entry["kind"], f"{field}.kind", ("linear", "conv2d"))
    want = 2 if kind == "linear" else 4
    shape = _list(entry["shape"], f"{field}.shape", want, want)
    for j, n in enumerate(shape):
        _int(n, f"{field}.shape[{j}]", 1, MAX_DIM)
    rows, cols = shape[0], math.prod(shape[1:])
    if rows * cols > MAX_WEIGHTS:
        raise _bad(f"{field}.shape", shape, f"at most {MAX_WEIGHTS} weights are allowed")
    bits = _int(entry["bits"], f"{field}.bits", 2, 8)
    enc = _choice(entry["encoding"], f"{field}.encoding", tuple(TENSORS))
    nnz = _int(entry["nnz"], f"{field}.nnz", 0, rows * cols)
    tensors = _dict(entry["tensors"], f"{field}.tensors", set(TENSORS[enc]))
    ranges = []
    for key in TENSORS[enc]:
        where = f"{field}.tensors.{key}"
        t = _list(tensors[key], where, 3, 3)
        off = _int(t[0], f"{where}[0] (byte offset)", 0, blob_size)
        counts = _tensor_count(key, enc, rows, cols, nnz)
        if isinstance(t[1], bool) or not isinstance(t[1], int) or t[1] not in counts:
            allowed = " or ".join(map(str, counts))
            raise _bad(f"{where}[1] (element count)", t[1], f"{allowed} for this shape and "
                       f"encoding")  # fmt: skip
        dtypes = _tensor_dtypes(key, enc, bits, version)
        code = _choice(t[2], f"{where}[2] (dtype)", dtypes)
        nbytes = math.ceil(t[1] * bits / 8) if code.startswith("p") else t[1] * ITEMSIZE[code]
        if off + nbytes > blob_size:
            raise ArtifactError(f"tensor {entry['name']}.{key} lies outside the blob (bytes "
                                f"{off}..{off + nbytes} of {blob_size})")  # fmt: skip
        ranges.append((off, off + nbytes, f"{entry['name']}.{key}"))
    return ranges


def check_ops(ops: Any, n_layers: int) -> None:
    for i, op in enumerate(_list(ops, "ops", 1, MAX_OPS)):
        field = f"ops[{i}]"
        if not isinstance(op, dict):
            raise _bad(field, op, "an object is required")
        kind = _choice(op.get("op"), f"{field}.op", OPS)
        fields = _OP_FIELDS.get(kind, set())
        required = fields - {"act_scale"}
        _dict(op, field, {"op"} | required, fields - required)
        if "layer" in op:
            _int(op["layer"], f"{field}.layer", 0, n_layers - 1)
        if "slot" in op:
            _name(op["slot"], f"{field}.slot")
        if "act_scale" in op:
            _number(op["act_scale"], f"{field}.act_scale", positive=True)
        for key, lo in (("kernel", 1), ("stride", 1), ("padding", 0)):
            if key in op:
                _pair(op[key], f"{field}.{key}", lo)


def check_info(info: Any, field: str = "info") -> None:
    """Provenance: names mapping to text, numbers, bools, null or short lists of them; an
    ``env`` must be a plain gymnasium id."""
    if not isinstance(info, dict) or len(info) > MAX_INFO:
        raise _bad(field, info, f"an object of at most {MAX_INFO} keys is required")
    for key, value in info.items():
        _name(key, f"{field} key")
        where = f"{field}.{key}"
        if key == "env":
            _str(value, where, ENV_ID, "a gymnasium id (A-Z a-z 0-9 _ . / -) is allowed")
        elif isinstance(value, list):
            for j, v in enumerate(_list(value, where, 0, 1 << 16)):
                _scalar(v, f"{where}[{j}]")
        else:
            _scalar(value, where)


def check_integer(integer: Any) -> None:
    """The integer section's types (their meaning is checked once the artifact is built)."""
    if integer is None:
        return
    integer = _dict(integer, "integer", {"input_scale"}, {"input_bits", "calibration"})
    _number(integer["input_scale"], "integer.input_scale", positive=True)
    if "input_bits" in integer:
        _choice(integer["input_bits"], "integer.input_bits", (8, 16))
    if "calibration" in integer:
        check_info(integer["calibration"], "integer.calibration")


def check_header(header: Any, blob_size: int) -> None:
    """Check an artifact header against the schema, using only the blob's length.

    :param header: the parsed JSON of ``header.npy``.
    :param blob_size: bytes in ``blob.npy``.
    :raises ArtifactError: one line naming the first bad field and what is allowed.
    """
    header = _dict(header, "header", _TOP, _TOP_OPTIONAL)
    if header["format"] != FORMAT_NAME:
        raise _bad("format", header["format"], f"{FORMAT_NAME!r} is required")
    version = _choice(header["version"], "version", READ_VERSIONS)
    algo = _choice(header["algo"], "algo", V3_ALGOS if version < 4 else tuple(ALGO_HEADS))
    check_obs(header["obs"])
    check_head(header["head"])
    _choice(header["head"]["kind"], "head.kind", ALGO_HEADS[algo])
    layers = _list(header["layers"], "layers", 1, MAX_LAYERS)
    ranges = [r for i, e in enumerate(layers) for r in check_layer(e, f"layers[{i}]", version,
                                                                      blob_size)]  # fmt: skip
    weights = sum(e["shape"][0] * math.prod(e["shape"][1:]) for e in layers)
    if weights > MAX_WEIGHTS:
        raise ArtifactError(f"layers hold {weights} weights: at most {MAX_WEIGHTS} are allowed")
    spans = sorted(r for r in ranges if r[1] > r[0])
    for (_, end, a), (start, _, b) in zip(spans, spans[1:], strict=False):
        if start < end:
            raise ArtifactError(f"tensors {a} and {b} overlap in the blob")
    check_ops(header["ops"], len(layers))
    # the graph from the shapes alone (zero-stride stand-ins allocate nothing), so that a shape
    # the graph cannot use is refused before its layer is decoded
    stand_ins = [Layer(e["name"], e["kind"], np.broadcast_to(np.int8(0), tuple(e["shape"])),
                       _ONE, _ONE, e["bits"]) for e in layers]  # fmt: skip
    infer_shapes(stand_ins, header["ops"], tuple(header["obs"]["shape"]))
    check_info(header.get("info", {}))
    check_integer(header.get("integer"))

"""The ``.npz`` container and its tensors (FORMAT.md "Container", "Tensors"): write and read.

:func:`save_artifact` writes an :class:`~nnc4rl.export.model.Artifact` (atomically) and
:func:`load_artifact` reads one back, checking everything a reader can check: format and version,
tensor ranges (inside the blob, not overlapping), finite scales and biases, codes on their grid,
the graph against the policy type, and the int8 activation scales of the integer path.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from nnc4rl.compress.quant import qmax
from nnc4rl.core.atomic import write_atomic
from nnc4rl.export.header import MAX_BLOB_BYTES, MAX_HEADER_BYTES, check_header
from nnc4rl.export.model import (
    FORMAT_NAME,
    FORMAT_VERSION,
    READ_VERSIONS,
    V3_ALGOS,
    Artifact,
    ArtifactError,
    Layer,
)

_DTYPES = {"i1": np.dtype("i1"), "u1": np.dtype("u1"), "u2": np.dtype("<u2"), "u4": np.dtype("<u4"),
           "f4": np.dtype("<f4")}  # fmt: skip


# -- sub-byte packing ----------------------------------------------------------------------------
def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """b-bit two's-complement codes packed LSB first: code ``k`` is bits ``[k b, (k+1) b)``.

    :param codes: int8 ``(n,)`` within ``[-2^(b-1), 2^(b-1) - 1]``.
    :returns: uint8 ``(ceil(n b / 8),)`` (the codes themselves as int8 bytes when ``b = 8``).
    """
    codes = np.asarray(codes, np.int8).reshape(-1)
    if bits == 8:
        return codes.view(np.uint8).copy()
    field = (codes.astype(np.int16) & ((1 << bits) - 1)).astype(np.uint8)
    bit_planes = ((field[:, None] >> np.arange(bits, dtype=np.uint8)) & 1).reshape(-1)
    return np.packbits(bit_planes, bitorder="little")


def unpack_codes(packed: np.ndarray, count: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: int8 ``(count,)``."""
    packed = np.asarray(packed, np.uint8)
    if bits == 8:
        return packed[:count].view(np.int8).copy()
    planes = np.unpackbits(packed, count=count * bits, bitorder="little").reshape(count, bits)
    field = (planes.astype(np.int16) << np.arange(bits, dtype=np.int16)).sum(axis=1)
    return np.where(field >= 1 << (bits - 1), field - (1 << bits), field).astype(np.int8)


def packed_bytes(count: int, bits: int) -> int:
    return math.ceil(count * bits / 8)


# -- writing -------------------------------------------------------------------------------------
def layer_encoding(layer: Layer) -> str:
    """The cheapest encoding of a layer's codes by :mod:`nnc4rl.compress.size` (what is stored)."""
    import torch

    from nnc4rl.compress.size import layer_size

    m = torch.from_numpy(layer.matrix.copy())
    return layer_size(layer.name, m, None, layer.bits, False).encoding


def encode_layer(layer: Layer, enc: str | None = None) -> tuple[str, dict[str, np.ndarray]]:
    """``(encoding, arrays)`` of a layer; ``values`` are packed b-bit codes (uint8 bytes)."""
    enc = enc or layer_encoding(layer)
    m = layer.matrix
    nz = m != 0
    arrays: dict[str, np.ndarray] = {}
    if enc == "dense":
        values = m.reshape(-1)
    elif enc == "bitmask":
        arrays["mask"] = np.packbits(nz.reshape(-1))
        values = m[nz]
    else:
        row_ptr = np.concatenate([[0], np.cumsum(nz.sum(axis=1))])
        rows, cols = np.nonzero(nz)
        arrays["row_ptr"] = row_ptr.astype("<u2" if row_ptr[-1] <= 0xFFFF else "<u4")
        arrays["col_idx"] = cols.astype(np.uint8 if enc == "csr8" else "<u2")
        values = m[rows, cols]
    arrays["values"] = values.astype(np.int8) if layer.bits == 8 else pack_codes(values, layer.bits)
    arrays["scale"] = layer.scale.astype("<f4")
    arrays["bias"] = layer.bias.astype("<f4")
    return enc, arrays


def encode(art: Artifact) -> tuple[dict[str, Any], bytes]:
    """The artifact's JSON header and binary blob (the two members of the ``.npz``)."""
    blob, layers = bytearray(), []
    for layer in art.layers:
        enc, arrays = encode_layer(layer)
        tensors = {}
        for key, arr in arrays.items():
            code = f"p{layer.bits}" if key == "values" and layer.bits < 8 else arr.dtype.str[1:]
            count = len(layer_values(layer, enc)) if key == "values" else int(arr.size)
            tensors[key] = [len(blob), count, code]
            blob += np.ascontiguousarray(arr).tobytes()
        layers.append({"name": layer.name, "kind": layer.kind, "shape": list(layer.codes.shape),
                       "bits": layer.bits, "encoding": enc, "nnz": layer.nnz,
                       "tensors": tensors})  # fmt: skip
    integer = art.integer
    if integer is not None:  # version 3 names the input codes' bits (8 when read from version 2)
        from nnc4rl.export.integer import input_bits

        integer = {**integer, "input_bits": input_bits(art)}
    # SAC and DQN artifacts stay version 3, so readers of that version still load them
    version = 3 if art.algo in V3_ALGOS else FORMAT_VERSION
    header = {"format": FORMAT_NAME, "version": version, "algo": art.algo, "obs": art.obs,
              "head": art.head, "layers": layers, "ops": art.ops, "info": art.info,
              "integer": integer}  # fmt: skip
    return header, bytes(blob)


def layer_values(layer: Layer, enc: str) -> np.ndarray:
    """The codes an encoding stores: all of them (dense) or the non-zeros in row-major order."""
    m = layer.matrix
    return m.reshape(-1) if enc == "dense" else m[m != 0]


def save_artifact(art: Artifact, path: str | Path) -> int:
    """Write ``art`` to ``path`` atomically (a zip of ``header.npy`` + ``blob.npy``); returns the
    bytes written."""
    art.check()
    header, blob = encode(art)
    check_header(header, len(blob))  # the writer never writes what the reader refuses
    text = json.dumps(header, separators=(",", ":")).encode()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(
        buf, header=np.frombuffer(text, np.uint8), blob=np.frombuffer(blob, np.uint8)
    )
    return write_atomic(path, buf.getvalue())


# -- reading -------------------------------------------------------------------------------------
def _bad(path: Path, why: str) -> ArtifactError:
    return ArtifactError(f"{str(path)!r} is not a valid {FORMAT_NAME} artifact: {why}")


def _tensor(blob: np.ndarray, entry: dict, key: str, bits: int = 8) -> np.ndarray:
    """A tensor of a layer whose header :func:`~nnc4rl.export.header.check_header` accepted
    (dtype from the closed list, byte range inside the blob)."""
    off, count, code = entry["tensors"][key]
    if code.startswith("p"):
        raw = blob[off : off + packed_bytes(count, bits)]
        return unpack_codes(raw, count, bits)
    return np.frombuffer(blob[off : off + count * _DTYPES[code].itemsize].tobytes(), _DTYPES[code])


def _decode_layer(entry: dict, blob: np.ndarray, path: Path, version: int) -> Layer:
    """The layer of a schema-checked header entry; checks what only the data can tell (CSR
    indices, the bitmask's count, finite scales, codes on the grid, the recorded nnz)."""
    shape, enc, name, bits = tuple(entry["shape"]), entry["encoding"], entry["name"], entry["bits"]
    kind, rows, cols = entry["kind"], shape[0], math.prod(shape[1:])
    values = _tensor(blob, entry, "values", bits if version >= 2 else 8)
    if enc == "dense":
        if values.size != rows * cols:
            raise _bad(path, f"layer {name}: dense values of the wrong size")
        m = values.reshape(rows, cols)
    elif enc == "bitmask":
        mask = np.unpackbits(_tensor(blob, entry, "mask"), count=rows * cols).astype(bool)
        if mask.sum() != values.size:
            raise _bad(path, f"layer {name}: bitmask does not match the values")
        m = np.zeros(rows * cols, np.int8)
        m[mask] = values
        m = m.reshape(rows, cols)
    elif enc in ("csr8", "csr16"):
        row_ptr = _tensor(blob, entry, "row_ptr").astype(np.int64)
        col_idx = _tensor(blob, entry, "col_idx").astype(np.int64)
        ok = (
            row_ptr.size == rows + 1 and row_ptr[0] == 0 and row_ptr[-1] == values.size
            and np.all(np.diff(row_ptr) >= 0) and col_idx.size == values.size
            and (col_idx.size == 0 or col_idx.max() < cols)
        )  # fmt: skip
        if not ok:
            raise _bad(path, f"layer {name}: inconsistent CSR indices")
        m = np.zeros((rows, cols), np.int8)
        m[np.repeat(np.arange(rows), np.diff(row_ptr)), col_idx] = values
    scale = _tensor(blob, entry, "scale").astype(np.float32)
    bias = _tensor(blob, entry, "bias").astype(np.float32)
    if not (np.all(np.isfinite(scale)) and np.all(scale > 0) and np.all(np.isfinite(bias))):
        raise _bad(path, f"layer {name}: scales must be finite and > 0, biases finite (NaN/Inf)")
    if np.abs(m.astype(np.int16)).max(initial=0) > qmax(bits):
        raise _bad(path, f"layer {name}: codes exceed the {bits}-bit grid")
    if np.count_nonzero(m) != entry["nnz"]:
        raise _bad(
            path, f"layer {name}: nnz {entry['nnz']} but {np.count_nonzero(m)} non-zero codes"
        )
    return Layer(name, kind, m.reshape(shape).copy(), scale, bias, bits)


def _check_integer(art: Artifact, path: Path, version: int = FORMAT_VERSION) -> None:
    """The integer section: a positive finite input scale, the input codes' bits (version 3;
    version 2 has none and means 8) and an ``act_scale`` where needed."""
    if art.integer is None:
        if any("act_scale" in op for op in art.ops):
            raise _bad(path, "act_scale without an integer section")
        return
    s = art.integer.get("input_scale")
    if not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0:
        raise _bad(path, f"integer.input_scale {s!r} must be a finite positive number")
    from nnc4rl.export.integer import INPUT_QMAX, needs_act_scale

    if version >= 3 and "input_bits" not in art.integer:
        raise _bad(path, f"integer.input_bits is missing: format version {version} requires it")
    if version < 3 and "input_bits" in art.integer:
        raise _bad(path, f"integer.input_bits is present: format version {version} has none")
    bits = art.integer.get("input_bits", 8)
    if bits not in INPUT_QMAX or (art.image and bits != 8):
        allowed = "8 (uint8 images)" if art.image else " or ".join(map(str, INPUT_QMAX))
        raise _bad(path, f"integer.input_bits {bits!r} is invalid: {allowed} is allowed")

    for i, op in enumerate(art.ops):
        a = op.get("act_scale")
        if needs_act_scale(art, i) != (a is not None):
            raise _bad(path, f"op {i} ({op['op']}) act_scale {a!r} is misplaced")
        if a is not None and (not isinstance(a, (int, float)) or not math.isfinite(a) or a <= 0):
            raise _bad(path, f"op {i} ({op['op']}) act_scale {a!r} must be finite and > 0")


def _npy_bytes(data: bytes, name: str, path: Path) -> np.ndarray:
    """The 1-D uint8 array of a ``.npy`` member, its header checked against the member's size
    before anything is allocated (``np.load`` would allocate what the ``.npy`` header claims)."""
    fp = io.BytesIO(data)
    major, _ = np.lib.format.read_magic(fp)
    if major not in (1, 2):
        raise _bad(path, f"{name} has .npy format version {major} (1 or 2 is read)")
    read_header = np.lib.format.read_array_header_1_0 if major == 1 else (
        np.lib.format.read_array_header_2_0)  # fmt: skip
    shape, _, dtype = read_header(fp)
    if dtype != np.uint8 or len(shape) != 1 or shape[0] != len(data) - fp.tell():
        raise _bad(path, f"{name} must be a 1-D uint8 array filling the member")
    return np.frombuffer(data, np.uint8, offset=fp.tell())


def _read_members(path: Path) -> tuple[bytes, np.ndarray]:
    """``(header JSON bytes, blob)`` of the zip, each member's size bounded from the zip's
    directory before it is inflated (a small deflated file can inflate to gigabytes)."""
    with zipfile.ZipFile(path) as zf:
        names = sorted(zf.namelist())
        if names != ["blob.npy", "header.npy"]:
            raise _bad(path, f"members {names[:3]!r}: exactly header.npy and blob.npy are required")
        out = {}
        for name, cap in (("header.npy", MAX_HEADER_BYTES), ("blob.npy", MAX_BLOB_BYTES)):
            size = zf.getinfo(name).file_size
            if size > cap + 4096:  # + the .npy header
                raise _bad(path, f"{name} inflates to {size} bytes: at most {cap} are allowed")
            # zipfile stops at the directory's size and checks the CRC
            out[name] = _npy_bytes(zf.read(name), name, path)
    return out["header.npy"].tobytes(), out["blob.npy"]


def load_artifact(path: str | Path) -> Artifact:
    """Read and check an artifact written by :func:`save_artifact` (format version 1 or 2).

    :raises ArtifactError: one line saying what is wrong (not a zip, wrong format name or
        version, inconsistent or overlapping tensors, NaN/Inf, a graph that does not fit the
        policy type).
    """
    path = Path(path)
    try:
        text, blob = _read_members(path)
        header = json.loads(text)
    except FileNotFoundError:
        raise ArtifactError(f"{str(path)!r} does not exist") from None
    except ArtifactError:
        raise
    # zlib.error: damaged deflate data; NotImplementedError: an unknown zip compression method
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, RecursionError,
            zlib.error, NotImplementedError) as err:  # fmt: skip
        raise _bad(path, f"unreadable ({type(err).__name__})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise _bad(
            path, f"format is {header.get('format') if isinstance(header, dict) else None!r}"
        )
    version = header.get("version")
    if version not in READ_VERSIONS:
        raise _bad(path, f"version {version!r} is not supported (this reads "
                   f"{', '.join(map(str, READ_VERSIONS))})")  # fmt: skip
    try:
        check_header(header, blob.size)  # before allocating anything the header sizes
        layers = [_decode_layer(e, blob, path, version) for e in header["layers"]]
        art = Artifact(header["algo"], layers, header["ops"], header["obs"], header["head"],
                       header.get("info", {}), header.get("integer"))  # fmt: skip
        art.check()
        _check_integer(art, path, version)
    except ArtifactError as err:
        msg = str(err)
        raise (err if msg.startswith(repr(str(path))) else _bad(path, msg)) from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        raise _bad(path, f"malformed header ({type(err).__name__}: {err})") from None
    return art

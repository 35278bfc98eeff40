"""Standalone C99 export: one ``.c`` / ``.h`` pair with the weights as const CSR int8 arrays.

The generated code needs only libc and libm (``tanhf``), allocates nothing at run time (the
activation buffers are static arrays sized at export time) and exposes::

    int nnc4rl_policy_forward(const float *obs, float *out);  /* raw outputs (tanh'd / Q) */
    int nnc4rl_policy_act(const float *obs, float *action);   /* env action; DQN: returns index */

``obs`` is one observation as the env yields it, as float32 (Atari: the ``H x W x C`` frame
stack with pixel values 0..255; the code transposes to CHW and divides by 255). A layer computes
``scale * sum(code * x) + bias`` over its CSR non-zeros with fp32 activations and an fp32
accumulator (weight-only quantization, like the trained network).
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from nnc4rl.export.artifact import Artifact, ArtifactError, Layer
from nnc4rl.export.inference import Policy

_C_TYPES = {
    np.dtype("uint8"): "uint8_t",
    np.dtype("uint16"): "uint16_t",
    np.dtype("uint32"): "uint32_t",
}

_KERNELS = """
static void lin_{tag}(const float *x, float *y, int rows, const int8_t *v, const {rt} *rp,
                      const {ct} *ci, const float *s, int per_row, const float *b)
{{
    int r;
    for (r = 0; r < rows; ++r) {{
        float acc = 0.0f;
        uint32_t k;
        for (k = rp[r]; k < rp[r + 1]; ++k) acc += (float)v[k] * x[ci[k]];
        y[r] = s[per_row ? r : 0] * acc + b[r];
    }}
}}

/* conv over CHW input; the output plane of channel o is its own accumulator */
static void conv_{tag}(const float *x, int C, int H, int W, float *y, int O, int OH, int OW,
                       int kh, int kw, int sh, int sw, int ph, int pw, const int8_t *v,
                       const {rt} *rp, const {ct} *ci, const float *s, const float *b)
{{
    int o, oy, ox;
    (void)C;
    for (o = 0; o < O; ++o) {{
        float *yo = y + (long)o * OH * OW;
        uint32_t k;
        for (oy = 0; oy < OH * OW; ++oy) yo[oy] = 0.0f;
        for (k = rp[o]; k < rp[o + 1]; ++k) {{
            int col = (int)ci[k], ic = col / (kh * kw), ky = (col / kw) % kh, kx = col % kw;
            float w = (float)v[k];
            for (oy = 0; oy < OH; ++oy) {{
                int iy = oy * sh + ky - ph;
                const float *xr;
                float *yr = yo + oy * OW;
                if (iy < 0 || iy >= H) continue;
                xr = x + ((long)ic * H + iy) * W;
                for (ox = 0; ox < OW; ++ox) {{
                    int ix = ox * sw + kx - pw;
                    if (ix >= 0 && ix < W) yr[ox] += w * xr[ix];
                }}
            }}
        }}
        for (oy = 0; oy < OH * OW; ++oy) yo[oy] = s[o] * yo[oy] + b[o];
    }}
}}
"""

_COMMON = """
static void relu_(float *x, long n) { long i; for (i = 0; i < n; ++i) if (x[i] < 0.0f) x[i] = 0.0f; }
static void tanh_(float *x, long n) { long i; for (i = 0; i < n; ++i) x[i] = tanhf(x[i]); }
static void add_(float *x, const float *r, long n) { long i; for (i = 0; i < n; ++i) x[i] += r[i]; }
static void copy_(float *d, const float *s, long n) { long i; for (i = 0; i < n; ++i) d[i] = s[i]; }

static void maxpool_(const float *x, int C, int H, int W, float *y, int OH, int OW, int kh, int kw,
                     int sh, int sw, int ph, int pw)
{
    int c, oy, ox, ky, kx;
    for (c = 0; c < C; ++c)
        for (oy = 0; oy < OH; ++oy)
            for (ox = 0; ox < OW; ++ox) {
                float m = -INFINITY;
                for (ky = 0; ky < kh; ++ky) {
                    int iy = oy * sh + ky - ph;
                    if (iy < 0 || iy >= H) continue;
                    for (kx = 0; kx < kw; ++kx) {
                        int ix = ox * sw + kx - pw;
                        float t;
                        if (ix < 0 || ix >= W) continue;
                        t = x[((long)c * H + iy) * W + ix];
                        if (t > m) m = t;
                    }
                }
                y[((long)c * OH + oy) * OW + ox] = m;
            }
}
"""


def _flt(v: float) -> str:
    """Exact C99 hex literal of a float32."""
    f = float(np.float32(v))
    if not np.isfinite(f):
        raise ArtifactError(f"non-finite constant {f} cannot be exported to C")
    return f"{f.hex()}f"


def _array(ctype: str, name: str, values: np.ndarray, fmt=str, per_line: int = 16) -> str:
    vals = [fmt(v) for v in np.asarray(values).reshape(-1).tolist()] or ["0"]
    lines = [", ".join(vals[i : i + per_line]) for i in range(0, len(vals), per_line)]
    body = ",\n    ".join(lines)
    return f"static const {ctype} {name}[{len(vals)}] = {{\n    {body}\n}};\n"


def _csr(layer: Layer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m = layer.matrix
    rows, cols = np.nonzero(m)
    row_ptr = np.concatenate([[0], np.cumsum(np.count_nonzero(m, axis=1))])
    rp = row_ptr.astype(np.uint16 if row_ptr[-1] <= 0xFFFF else np.uint32)
    ci = cols.astype(
        np.uint8 if layer.cols <= 256 else np.uint16 if layer.cols <= 65536 else np.uint32
    )
    return m[rows, cols], rp, ci


def c_source(art: Artifact, header_name: str = "policy.h") -> tuple[str, str]:
    """The ``(source, header)`` texts of ``art``."""
    shapes = art.activation_shapes()
    size = lambda s: int(np.prod(s))  # noqa: E731
    max_act = max(size(s) for s in shapes)
    obs_size, n_out = size(art.obs["shape"]), art.n_outputs
    discrete = art.head["kind"] == "argmax"
    guard = re.sub(r"\W", "_", header_name).upper()
    header = f"""/* nnc4rl {art.algo.upper()} policy: int{art.bits} CSR weights, fp32 activations.
 * Generated by `nnc4rl export --format c`; see nnc4rl/export/FORMAT.md. C99, libc + libm only. */
#ifndef {guard}
#define {guard}

#define NNC4RL_OBS_SIZE {obs_size}    /* floats in one observation (env layout) */
#define NNC4RL_OUTPUT_SIZE {n_out}    /* {"Q-values" if discrete else "tanh-squashed actions"} */
#define NNC4RL_ACTION_SIZE {art.action_size}
#define NNC4RL_DISCRETE {int(discrete)}

/* Network outputs for one observation: {"Q-values" if discrete else "actions in [-1, 1]"}. Returns 0. */
int nnc4rl_policy_forward(const float *obs, float *out);
/* The env action: {"action[0] = argmax index (also returned)" if discrete else "rescaled to the action bounds; returns 0"}. */
int nnc4rl_policy_act(const float *obs, float *action);

#endif
"""
    parts = [
        f"/* nnc4rl {art.algo.upper()} policy ({art.info.get('source', 'artifact')}): "
        f"{len(art.layers)} layers, sparsity {art.sparsity():.4f}, int{art.bits} CSR weights. */\n"
        f'#include "{header_name}"\n#include <math.h>\n#include <stdint.h>\n\n'
    ]
    kernels, data, body = set(), [], []
    for i, layer in enumerate(art.layers):
        v, rp, ci = _csr(layer)
        tag = f"{_C_TYPES[ci.dtype][:-2]}_{_C_TYPES[rp.dtype][:-2]}"
        kernels.add((tag, _C_TYPES[rp.dtype], _C_TYPES[ci.dtype]))
        data.append(
            f"/* layer {i}: {layer.name} {layer.kind} {list(layer.codes.shape)}, nnz {layer.nnz} */\n"
        )
        data.append(_array("int8_t", f"L{i}_v", v))
        data.append(_array(_C_TYPES[rp.dtype], f"L{i}_rp", rp))
        data.append(_array(_C_TYPES[ci.dtype], f"L{i}_ci", ci))
        data.append(_array("float", f"L{i}_s", layer.scale, _flt, 6))
        data.append(_array("float", f"L{i}_b", layer.bias, _flt, 6))
    # slot buffers for residual adds: first free one, sized to the largest use
    slot_buf, free, slot_sizes = {}, [], []
    for op, shape in zip(art.ops, shapes[:-1], strict=True):
        if op["op"] == "save":
            k = free.pop() if free else len(slot_sizes)
            if k == len(slot_sizes):
                slot_sizes.append(0)
            slot_sizes[k] = max(slot_sizes[k], size(shape))
            slot_buf[op["slot"]] = k
        elif op["op"] == "add":
            free.append(slot_buf[op["slot"]])
    bufs = [f"static float buf0[{max_act}], buf1[{max_act}];\n"]
    bufs += [f"static float slot{k}[{n}];\n" for k, n in enumerate(slot_sizes)]
    # straight-line forward
    c, h, w = (art.obs["shape"] + [1, 1])[:3] if len(art.obs["shape"]) == 3 else (0, 0, 0)
    div = f" / {_flt(art.obs['divide'])}" if art.obs.get("divide") else ""
    if art.obs.get("layout") == "HWC":
        body.append(
            f"    {{ int ch, i; for (ch = 0; ch < {c}; ++ch) for (i = 0; i < {h * w}; ++i)\n"
            f"        x[ch * {h * w} + i] = obs[i * {c} + ch]{div}; }}\n"
        )
    else:
        body.append(f"    {{ int i; for (i = 0; i < {obs_size}; ++i) x[i] = obs[i]{div}; }}\n")
    for op, s_in, s_out in zip(art.ops, shapes[:-1], shapes[1:], strict=True):
        kind, n = op["op"], size(s_out)
        if kind == "linear":
            i = op["layer"]
            layer = art.layers[i]
            tag = _tag(layer)
            body.append(f"    lin_{tag}(x, y, {layer.rows}, L{i}_v, L{i}_rp, L{i}_ci, L{i}_s, "
                        f"{int(layer.scale.size > 1)}, L{i}_b); SWAP;\n")  # fmt: skip
        elif kind == "conv2d":
            i = op["layer"]
            layer = art.layers[i]
            kh, kw = layer.codes.shape[2:]
            (sh, sw), (ph, pw) = op["stride"], op["padding"]
            body.append(
                f"    conv_{_tag(layer)}(x, {s_in[0]}, {s_in[1]}, {s_in[2]}, y, {s_out[0]}, {s_out[1]}, "
                f"{s_out[2]}, {kh}, {kw}, {sh}, {sw}, {ph}, {pw}, L{i}_v, L{i}_rp, L{i}_ci, "
                f"L{i}_s, L{i}_b); SWAP;\n"
            )
        elif kind == "maxpool":
            (kh, kw), (sh, sw), (ph, pw) = op["kernel"], op["stride"], op["padding"]
            body.append(
                f"    maxpool_(x, {s_in[0]}, {s_in[1]}, {s_in[2]}, y, {s_out[1]}, {s_out[2]}, "
                f"{kh}, {kw}, {sh}, {sw}, {ph}, {pw}); SWAP;\n"
            )
        elif kind == "relu":
            body.append(f"    relu_(x, {n});\n")
        elif kind == "tanh":
            body.append(f"    tanh_(x, {n});\n")
        elif kind == "save":
            body.append(f"    copy_(slot{slot_buf[op['slot']]}, x, {n});\n")
        elif kind == "add":
            body.append(f"    add_(x, slot{slot_buf[op['slot']]}, {n});\n")
        # flatten: CHW is already the row-major order torch flattens
    parts.append(_COMMON)
    for tag, rt, ct in sorted(kernels):
        parts.append(_KERNELS.format(tag=tag, rt=rt, ct=ct))
    parts.append("\n")
    parts += data
    parts.append("\n")
    parts += bufs
    parts.append(
        "\n#define SWAP do { float *t_ = x; x = y; y = t_; } while (0)\n\n"
        "int nnc4rl_policy_forward(const float *obs, float *out)\n{\n"
        "    float *x = buf0, *y = buf1;\n"
    )
    parts += body
    parts.append(f"    copy_(out, x, {n_out});\n    (void)y;\n    return 0;\n}}\n\n")
    if discrete:
        parts.append(
            "int nnc4rl_policy_act(const float *obs, float *action)\n{\n"
            f"    float q[{n_out}];\n    int i, best = 0;\n    nnc4rl_policy_forward(obs, q);\n"
            f"    for (i = 1; i < {n_out}; ++i) if (q[i] > q[best]) best = i;\n"
            "    action[0] = (float)best;\n    return best;\n}\n"
        )
    else:
        low = np.asarray(art.head["low"], np.float32)
        rng = (np.asarray(art.head["high"], np.float32) - low).astype(np.float32)
        parts.append(_array("float", "ACTION_LOW", low, _flt, 6))
        parts.append(_array("float", "ACTION_RANGE", rng, _flt, 6))
        parts.append(
            "\nint nnc4rl_policy_act(const float *obs, float *action)\n{\n"
            f"    float a[{n_out}];\n    int i;\n    nnc4rl_policy_forward(obs, a);\n"
            f"    for (i = 0; i < {n_out}; ++i)\n"
            "        action[i] = ACTION_LOW[i] + (0.5f * (a[i] + 1.0f)) * ACTION_RANGE[i];\n"
            "    return 0;\n}\n"
        )
    return "".join(parts), header


def _tag(layer: Layer) -> str:
    _, rp, ci = _csr(layer)
    return f"{_C_TYPES[ci.dtype][:-2]}_{_C_TYPES[rp.dtype][:-2]}"


def save_c(art: Artifact, path: str | Path) -> tuple[Path, Path]:
    """Write ``PATH.c`` and ``PATH.h`` (``path`` must end in ``.c``); returns both paths."""
    path = Path(path)
    if path.suffix != ".c":
        raise ArtifactError(
            f"--out {str(path)!r} is invalid for --format c: give a path ending in .c"
        )
    header_path = path.with_suffix(".h")
    source, header = c_source(art, header_path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    header_path.write_text(header)
    return path, header_path


def compiler() -> str:
    """The system C compiler (``$CC``, else ``cc`` / ``gcc``)."""
    for name in (os.environ.get("CC"), "cc", "gcc"):
        if name and shutil.which(name):
            return name
    raise ArtifactError("no C compiler found: set CC or install gcc")


C_FLAGS = ["-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-pedantic"]


def compile_shared(c_path: str | Path, so_path: str | Path) -> Path:
    """Compile the exported source into a shared library (for tests and benchmarks)."""
    so_path = Path(so_path)
    cmd = [compiler(), *C_FLAGS, "-shared", "-fPIC", "-o", str(so_path), str(c_path), "-lm"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return so_path


def footprint(c_path: str | Path, opt: str = "-Os") -> dict[str, int]:
    """Flash and static RAM of the compiled policy (host ``size`` of an ``-Os`` object file).

    ``flash`` = text (code + const weights) + data; ``ram`` = data + bss (activation buffers);
    the stack adds a few hundred bytes (the output array of ``nnc4rl_policy_act``).
    """
    with tempfile.TemporaryDirectory() as tmp:
        obj = Path(tmp) / "policy.o"
        subprocess.run([compiler(), "-std=c99", opt, "-c", "-o", str(obj), str(c_path)],
                       check=True, capture_output=True, text=True)  # fmt: skip
        out = subprocess.run(["size", str(obj)], check=True, capture_output=True, text=True).stdout
    text, data, bss = (int(t) for t in out.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss, "flash": text + data, "ram": data + bss}


class CPolicy(Policy):
    """The compiled C policy (a shared library built by :func:`compile_shared`) via ctypes."""

    def __init__(self, art: Artifact, so_path: str | Path):
        self.lib = ctypes.CDLL(str(Path(so_path).resolve()))
        f32p = ctypes.POINTER(ctypes.c_float)
        for fn in (self.lib.nnc4rl_policy_forward, self.lib.nnc4rl_policy_act):
            fn.argtypes, fn.restype = [f32p, f32p], ctypes.c_int
        n_out = art.n_outputs

        def outputs(obs: np.ndarray) -> np.ndarray:
            obs = np.ascontiguousarray(obs, np.float32).reshape(len(obs), -1)
            out = np.empty((len(obs), n_out), np.float32)
            for i in range(len(obs)):
                self.lib.nnc4rl_policy_forward(
                    obs[i].ctypes.data_as(f32p), out[i].ctypes.data_as(f32p)
                )
            return out

        super().__init__(art, outputs)

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        """Actions from ``nnc4rl_policy_act`` (argmax / rescaling done in C)."""
        obs, single = self._batch(observation)
        obs = np.ascontiguousarray(obs, np.float32).reshape(len(obs), -1)
        act = np.empty((len(obs), self.artifact.action_size), np.float32)
        f32p = ctypes.POINTER(ctypes.c_float)
        for i in range(len(obs)):
            self.lib.nnc4rl_policy_act(obs[i].ctypes.data_as(f32p), act[i].ctypes.data_as(f32p))
        actions = act[:, 0].astype(np.int64) if self.artifact.head["kind"] == "argmax" else act
        return (actions[0] if single else actions), None

"""Standalone C99 export: one ``.c`` / ``.h`` pair, weights as ``static const`` arrays.

The generated code needs only libc (``<stdint.h>``) and libm (``tanhf``), allocates nothing at
run time and contains only what the model uses: one function per layer, specialised at export
time (shapes, strides and the layer's storage encoding are constants), and only the helpers
(ReLU, max-pool, residual add, requantization, sub-byte code unpacking) that some op needs, so it
builds with ``-std=c99 -Wall -Wextra -Wpedantic -Werror``. Each layer is stored in the smallest of
dense / CSR / bitmask (the choice of :mod:`nnc4rl.compress.size`), its codes packed to ``bits`` bits. A
conv is computed output channel by output channel over that channel's non-zero weights (CSR over
output channels), so pruned weights cost neither flash nor time. In the integer path an 8-bit
fully-connected layer runs a CSR or a (DSP) dense kernel of :mod:`nnc4rl.export.c_kernels`,
whichever the modelled Cortex-M4 cost prefers (recorded in the layer's comment).

Two arithmetic paths (FORMAT.md):

* weight-only (default): fp32 activations, ``scale * sum(code * x) + bias``, the trained
  network's arithmetic; ``obs`` is ``const float *``.
* full-integer (``integer=True``, a calibrated artifact): int8 activations, int32 accumulators,
  fixed-point requantization (:mod:`nnc4rl.export.integer`, which it matches bit for bit); the
  observation type is ``uint8_t`` for Atari frames and ``float`` otherwise, quantized at the
  interface to int16 codes (``int16_t obs_q``) that the first layer reads.

Public symbols carry a prefix (default ``nnc4rl_policy``), so several policies link into one
firmware image: ``PREFIX_forward(obs, out)`` (raw outputs: tanh-squashed actions / Q-values),
``PREFIX_act(obs, action)`` (env action; DQN: writes and returns the index) and, in the integer
path, ``PREFIX_accumulators(obs, acc)`` (the output layer's int32 accumulators).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nnc4rl.core.atomic import write_atomic
from nnc4rl.export.c_kernels import (
    DSP_INCLUDE,
    NOINLINE_MACRO,
    choose_kernel,
    conv_kernel,
    linear_kernel,
    requant_function,
    unrolled_block,
    unrolled_conv_kernel,
)
from nnc4rl.export.codec import encode_layer, layer_values, pack_codes
from nnc4rl.export.header import safe_text
from nnc4rl.export.model import Artifact, ArtifactError, Layer

DEFAULT_PREFIX = "nnc4rl_policy"
M_PROFILE = "defined(__ARM_ARCH_PROFILE) && __ARM_ARCH_PROFILE == 'M'"  # a Cortex-M target
_C_TYPES = {np.dtype("uint8"): "uint8_t", np.dtype("<u2"): "uint16_t",
            np.dtype("<u4"): "uint32_t", np.dtype("int8"): "int8_t"}  # fmt: skip


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


def _comment(text: object) -> str:
    """Text from the artifact as it may appear inside a C comment: the loader already refuses
    unsafe names, and this keeps an in-memory artifact (or a future field) from ever ending the
    comment, opening a preprocessor line or forming a trigraph (``*``, ``#``, ``?``, ``\\``
    and newlines become ``_``)."""
    return safe_text(str(text))


def _i32(v: int) -> str:
    v = int(v)
    if not -(2**31) <= v < 2**31:
        raise ArtifactError(f"int32 constant {v} is out of range")
    return f"{v}" if v != -(2**31) else "(-2147483647 - 1)"


_HELPERS = {
    "relu_f": "static void relu_f(float *x, int n)\n"
    "{ int i; for (i = 0; i < n; ++i) if (x[i] < 0.0f) x[i] = 0.0f; }\n",
    "relu_q": "static void relu_q(int8_t *x, int n)\n"
    "{ int i; for (i = 0; i < n; ++i) if (x[i] < 0) x[i] = 0; }\n",
    "add_f": "static void add_f(float *x, const float *r, int n)\n"
    "{ int i; for (i = 0; i < n; ++i) x[i] += r[i]; }\n",
    "copy_f": "static void copy_f(float *d, const float *s, int n)\n"
    "{ int i; for (i = 0; i < n; ++i) d[i] = s[i]; }\n",
    "copy_q": "static void copy_q(int8_t *d, const int8_t *s, int n)\n"
    "{ int i; for (i = 0; i < n; ++i) d[i] = s[i]; }\n",
    "add_q": "static void add_q(int8_t *x, const int8_t *r, int n, int32_t mx, int32_t mr, int k)\n"
    "{\n    int i;\n    for (i = 0; i < n; ++i) {\n"
    "        int64_t t = ((int64_t)x[i] * mx + (int64_t)r[i] * mr + ((int64_t)1 << (k - 1))) >> k;\n"
    "        x[i] = (int8_t)(t < -127 ? -127 : t > 127 ? 127 : t);\n    }\n}\n",
}

_MAXPOOL = """static void maxpool_{t}(const {T} *x, int C, int H, int W, {T} *y, int OH, int OW, int kh,
                      int kw, int sh, int sw, int ph, int pw)
{{
    int c, oy, ox, ky, kx;
    for (c = 0; c < C; ++c)
        for (oy = 0; oy < OH; ++oy)
            for (ox = 0; ox < OW; ++ox) {{
                {T} m = {low};
                for (ky = 0; ky < kh; ++ky) {{
                    int iy = oy * sh + ky - ph;
                    if (iy < 0 || iy >= H) continue;
                    for (kx = 0; kx < kw; ++kx) {{
                        int ix = ox * sw + kx - pw;
                        if (ix >= 0 && ix < W && x[(c * H + iy) * W + ix] > m)
                            m = x[(c * H + iy) * W + ix];
                    }}
                }}
                y[(c * OH + oy) * OW + ox] = m;
            }}
}}
"""


def _unpack_helper(bits: int) -> str:
    """``code{b}(v, k)``: the k-th signed b-bit code of a packed array (LSB first)."""
    return (
        f"static int32_t code{bits}(const uint8_t *v, uint32_t k)\n{{\n"
        f"    uint32_t bit = k * {bits}u, f = (uint32_t)v[bit >> 3] >> (bit & 7u);\n"
        f"    if ((bit & 7u) + {bits}u > 8u) f |= (uint32_t)v[(bit >> 3) + 1u] << (8u - (bit & 7u));\n"
        f"    f &= {(1 << bits) - 1}u;\n"
        f"    return (int32_t)(f ^ {1 << (bits - 1)}u) - {1 << (bits - 1)};\n}}\n"
    )


def check_prefix(prefix: str) -> str:
    """A symbol prefix must be a C identifier (letters, digits, ``_``; not starting with a digit)."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,40}", prefix or ""):
        raise ArtifactError(
            f"prefix={prefix!r} is invalid: use a C identifier (letters, digits, _; no leading digit)"
        )
    return prefix


def header_guard(header_name: str, prefix: str) -> str:
    """Include guard from the header's file name (any character outside [A-Za-z0-9] becomes
    ``_``; prefixed so that a name starting with a digit still gives an identifier)."""
    stem = re.sub(r"[^A-Za-z0-9]", "_", header_name).upper()
    return f"{prefix.upper()}_{stem}_"


class _Gen:
    """Generates the C text of one artifact (see the module docstring)."""

    def __init__(self, art: Artifact, prefix: str, integer: bool, encoding: str | None = None):
        self.art, self.p, self.integer, self.encoding = art, check_prefix(prefix), integer, encoding
        self.shapes = art.check()
        self.helpers: set[str] = set()
        self.data: list[str] = []
        self.funcs: list[str] = []
        self.body: list[str] = []
        if integer:
            from nnc4rl.export.integer import QMAX, integer_plan

            self.plan = integer_plan(art)
            self.input_t = "int16_t" if self.plan.input_qmax > QMAX else "int8_t"
            if art.image and art.ops[0]["op"] != "conv2d":
                raise ArtifactError("integer C export of images needs a conv2d as the first op")
        self.act_t = "int8_t" if integer else "float"

    # -- weights and layer functions ------------------------------------------------------------
    def _values(self, i: int, layer: Layer, enc: str) -> str:
        """Emit the codes array; returns the C expression of the code at index ``k``."""
        vals = layer_values(layer, enc)
        if layer.bits == 8:
            self.data.append(_array("int8_t", f"L{i}_v", vals))
            return f"(int32_t)L{i}_v[k]"
        self.helpers.add(f"code{layer.bits}")
        self.data.append(_array("uint8_t", f"L{i}_v", pack_codes(vals, layer.bits)))
        return f"code{layer.bits}(L{i}_v, k)"

    def _loop(self, i: int, layer: Layer, row: str, body: str, indent: str) -> str:
        """Loop over the non-zeros of ``row`` in the layer's encoding (``c`` column, ``w``
        code, running value index ``k``) around ``body``."""
        enc, arrays = encode_layer(layer, self.encoding)
        code = self._values(i, layer, enc)
        cols = layer.cols
        if enc == "dense":
            return (f"{indent}for (c = 0; c < {cols}; ++c, ++k) {{\n"
                    f"{indent}    const int32_t w = {code};\n{body}{indent}}}\n")  # fmt: skip
        if enc == "bitmask":
            self.data.append(_array("uint8_t", f"L{i}_bm", arrays["mask"]))
            return (f"{indent}for (c = 0; c < {cols}; ++c, ++b) {{\n"
                    f"{indent}    if (L{i}_bm[b >> 3] & (0x80u >> (b & 7u))) {{\n"
                    f"{indent}        const int32_t w = {code};\n{body}{indent}        ++k;\n"
                    f"{indent}    }}\n{indent}}}\n")  # fmt: skip
        rp, ci = arrays["row_ptr"], arrays["col_idx"]
        self.data.append(_array(_C_TYPES[rp.dtype], f"L{i}_rp", rp))
        self.data.append(_array(_C_TYPES[ci.dtype], f"L{i}_ci", ci))
        return (f"{indent}for (k = L{i}_rp[{row}]; k < (uint32_t)L{i}_rp[{row} + 1]; ++k) {{\n"
                f"{indent}    const int32_t w = {code};\n{indent}    c = L{i}_ci[k];\n"
                f"{body}{indent}}}\n")  # fmt: skip

    @staticmethod
    def _per_row(values: np.ndarray) -> tuple[np.ndarray, bool]:
        """One value when all rows share it (per-tensor scales), else all of them."""
        values = np.asarray(values).reshape(-1)
        uniform = bool(np.all(values == values[0]))
        return (values[:1] if uniform else values), uniform

    def _float_consts(self, i: int, layer: Layer, row: str) -> str:
        """Emit scale and bias; returns the C index of the scale for row ``row``."""
        scale, uniform = self._per_row(layer.channel_scale())
        self.data.append(_array("float", f"L{i}_s", scale, _flt, 6))
        self.data.append(_array("float", f"L{i}_b", layer.bias, _flt, 6))
        return "0" if uniform else row

    def _int_consts(self, i: int, op_i: int, bias: bool = True) -> None:
        """Emit the int32 bias (``L{i}_b``) and the requantization ``rq{i}(acc, row)``
        (:func:`nnc4rl.export.c_kernels.requant_function`; not for the output layer)."""
        lp = self.plan.ops[op_i]
        if bias:
            self.data.append(_array("int32_t", f"L{i}_b", lp.bias, _i32, 8))
        if lp.mult is not None:
            data, fn = requant_function(f"rq{i}", lp.mult, lp.shift, lp.lo)
            self.data.append(data)
            self.funcs.append(fn)

    def linear(self, op_i: int, i: int, in_t: str) -> str:
        layer, out = self.art.layers[i], op_i == self.art.output_op
        if self.integer:
            out_t = "int32_t" if out else "int8_t"
            forced = {"dense": "dense", "csr8": "csr", "csr16": "csr"}.get(self.encoding or "")
            if layer.bits == 8 and (self.encoding is None or forced):
                return self._fast_linear(op_i, i, in_t, out_t, forced)
            self._int_consts(i, op_i)
            inner = self._loop(i, layer, "r", "            acc += w * (int32_t)x[c];\n", "        ")
            store = "        y[r] = acc;\n" if out else f"        y[r] = rq{i}(acc, r);\n"
            init = f"L{i}_b[r]"
            acc_t = "int32_t"
        else:
            j = self._float_consts(i, layer, "r")
            inner = self._loop(i, layer, "r", "            acc += (float)w * x[c];\n", "        ")
            store = f"        y[r] = L{i}_s[{j}] * acc + L{i}_b[r];\n"
            init, out_t, acc_t = "0.0f", "float", "float"
        self.funcs.append(
            f"/* layer {i}: {_comment(layer.name)} linear {list(layer.codes.shape)}, nnz {layer.nnz} */\n"
            f"static NOINLINE void layer{i}(const {in_t} *x, {out_t} *y)\n{{\n"
            f"    uint32_t k = 0, b = 0, c;\n    int r;\n    (void)b;\n"
            f"    for (r = 0; r < {layer.rows}; ++r) {{\n        {acc_t} acc = {init};\n"
            f"{inner}{store}    }}\n    (void)k;\n}}\n"
        )
        return f"layer{i}"

    def _fast_linear(self, op_i: int, i: int, in_t: str, out_t: str, forced: str | None) -> str:
        """An int8 layer of the integer path by :func:`nnc4rl.export.c_kernels.linear_kernel`."""
        layer, lp = self.art.layers[i], self.plan.ops[op_i]
        kind, why = choose_kernel(layer, 16 if in_t == "int16_t" else 8, forced)
        self._int_consts(i, op_i, bias=False)
        if kind == "dense" and in_t == "int8_t":
            self.dsp = True
        out = op_i == self.art.output_op
        data, fn = linear_kernel(
            i, layer, kind, in_t, out_t, lp.bias,
            lambda y: f"        {y} = acc;\n" if out else f"        {y} = rq{i}(acc, r);\n",
        )  # fmt: skip
        self.data.append(data)
        self.funcs.append(
            f"/* layer {i}: {_comment(layer.name)} linear {list(layer.codes.shape)}, nnz "
            f"{layer.nnz}; {why} */\n{fn}"
        )
        return f"layer{i}"

    def _fast_conv(self, op_i: int, i: int, op: dict, s_in, s_out, in_t: str, hwc: bool) -> str:
        """An unpadded int8 conv of the integer path by :func:`nnc4rl.export.c_kernels.conv_kernel`
        (``encoding="dense"``: every weight, zeros included, the dense code of the same net)."""
        layer, lp = self.art.layers[i], self.plan.ops[op_i]
        out = op_i == self.art.output_op
        self._int_consts(i, op_i, bias=False)
        args = (i, layer, in_t, "int32_t" if out else "int8_t", lp.bias, tuple(s_in),
                tuple(s_out), tuple(op["stride"]), hwc,
                lambda y, acc: f"{y} = {acc};" if out else f"{y} = rq{i}({acc}, o);")  # fmt: skip
        p = 0 if self.encoding == "dense" else unrolled_block(s_out[2], layer.nnz)
        if p:
            data, fn = unrolled_conv_kernel(*args, p)
            kind = f"unrolled sparse conv, {p} output positions a call"
        else:
            dense = self.encoding == "dense"
            data, fn = conv_kernel(*args, dense=dense)
            kind = ("dense conv, im2col + 4 channels a SMLAD loop with the DSP extension, else 8 "
                    "output positions a block" if dense else "sparse conv, 8 output positions a block")  # fmt: skip
            if dense:
                self.dsp = True
        self.data.append(data)
        sh, sw = op["stride"]
        self.funcs.append(
            f"/* layer {i}: {_comment(layer.name)} conv {list(layer.codes.shape)} stride "
            f"{[sh, sw]}, nnz {layer.nnz}; input {'HWC' if hwc else 'CHW'} {list(s_in)}; "
            f"kernel {kind} */\n{fn}"
        )
        return f"layer{i}"

    def conv(self, op_i: int, i: int, op: dict, s_in, s_out, in_t: str, hwc: bool) -> str:
        layer = self.art.layers[i]
        pad = tuple(op["padding"]) != (0, 0)
        if self.integer and layer.bits == 8 and not pad and self.encoding in (None, "dense"):
            # Cortex-M: the register-block kernel; elsewhere the row loop below, which a host
            # compiler vectorizes (faster there). Same integers either way.
            d0, f0, scratch = len(self.data), len(self.funcs), getattr(self, "scratch", 0)
            self._fast_conv(op_i, i, op, s_in, s_out, in_t, hwc)
            m_data, m_funcs = self.data[d0:], self.funcs[f0:]
            del self.data[d0:], self.funcs[f0:]
            self._row_conv(op_i, i, op, s_in, s_out, in_t, hwc)
            h_data, h_funcs = self.data[d0:], self.funcs[f0:]
            del self.data[d0:], self.funcs[f0:]
            self.host_scratch = max(getattr(self, "host_scratch", 0), self.scratch)
            self.scratch = scratch
            for part, m_part, h_part in ((self.data, m_data, h_data),
                                         (self.funcs, m_funcs, h_funcs)):  # fmt: skip
                part.append(f"#if {M_PROFILE}\n{''.join(m_part)}#else\n{''.join(h_part)}#endif\n")
            return f"layer{i}"
        return self._row_conv(op_i, i, op, s_in, s_out, in_t, hwc)

    def _row_conv(self, op_i: int, i: int, op: dict, s_in, s_out, in_t: str, hwc: bool) -> str:
        """A conv over each output channel's non-zero weights, accumulating whole output rows in
        ``scratch`` (the fp32 path, padded convs, sub-byte codes; the host build of the rest)."""
        layer = self.art.layers[i]
        c_in, h, w = s_in
        o, oh, ow = s_out
        kh, kw = layer.codes.shape[2:]
        (sh, sw), (ph, pw) = op["stride"], op["padding"]
        # input element (ic, iy, ix): CHW or, for the raw frame stack, HWC
        if hwc:
            base, step = f"(iy * {w} + kx - {pw}) * {c_in} + ic", sw * c_in
        else:
            base, step = f"(ic * {h} + iy) * {w} + kx - {pw}", sw
        rng_y = (f"            oy0 = ky < {ph} ? ({ph} - ky + {sh - 1}) / {sh} : 0;\n"
                 f"            t = {h - 1 + ph} - ky;\n"
                 f"            oy1 = t < 0 ? 0 : t / {sh} + 1;\n"
                 f"            if (oy1 > {oh}) oy1 = {oh};\n") if ph else ""  # fmt: skip
        rng_x = (f"            ox0 = kx < {pw} ? ({pw} - kx + {sw - 1}) / {sw} : 0;\n"
                 f"            t = {w - 1 + pw} - kx;\n"
                 f"            ox1 = t < 0 ? 0 : t / {sw} + 1;\n"
                 f"            if (ox1 > {ow}) ox1 = {ow};\n") if pw else ""  # fmt: skip
        mul = "w * (int32_t)" if self.integer else "wf * "
        body = (
            f"            const int ic = (int)c / {kh * kw}, ky = ((int)c / {kw}) % {kh}, "
            f"kx = (int)c % {kw};\n"
            + ("" if self.integer else "            const float wf = (float)w;\n")
            + rng_y + rng_x
            + f"            for (oy = {'oy0' if ph else 0}; oy < {'oy1' if ph else oh}; ++oy) {{\n"
            f"                const int iy = oy * {sh} + ky - {ph}, base = {base};\n"
            f"                {'int32_t' if self.integer else 'float'} *ar = a + oy * {ow};\n"
            f"                for (ox = {'ox0' if pw else 0}; ox < {'ox1' if pw else ow}; ++ox)\n"
            f"                    ar[ox] += {mul}x[base + ox * {step}];\n"
            f"            }}\n"
        )  # fmt: skip
        inner = self._loop(i, layer, "o", body, "        ")
        n = oh * ow
        if self.integer:
            self._int_consts(i, op_i)
            self.scratch = max(getattr(self, "scratch", 0), n)
            out = op_i == self.art.output_op
            init = f"        for (p = 0; p < {n}; ++p) a[p] = L{i}_b[o];\n"
            fin = (f"        for (p = 0; p < {n}; ++p) y[o * {n} + p] = "
                   + ("a[p];\n" if out else f"rq{i}(a[p], o);\n"))  # fmt: skip
            decl = "    int32_t *a = scratch;\n"
            out_t = "int32_t" if out else "int8_t"
        else:
            j = self._float_consts(i, layer, "o")
            init = f"        for (p = 0; p < {n}; ++p) a[p] = 0.0f;\n"
            fin = f"        for (p = 0; p < {n}; ++p) a[p] = L{i}_s[{j}] * a[p] + L{i}_b[o];\n"
            decl, out_t = "", "float"
        self.funcs.append(
            f"/* layer {i}: {_comment(layer.name)} conv {list(layer.codes.shape)} stride {[sh, sw]} "
            f"padding {[ph, pw]}, nnz {layer.nnz}; input {'HWC' if hwc else 'CHW'} "
            f"{list(s_in)} */\n"
            f"static NOINLINE void layer{i}(const {in_t} *x, {out_t} *y)\n{{\n"
            f"    uint32_t k = 0, b = 0, c;\n    int o, oy, ox, p{', oy0, oy1' if ph else ''}"
            f"{', ox0, ox1' if pw else ''}{', t' if ph or pw else ''};\n{decl}    (void)b;\n"
            f"    for (o = 0; o < {o}; ++o) {{\n"
            + ("" if self.integer else f"        float *a = y + o * {n};\n")
            + init
            + inner
            + fin
            + "    }\n    (void)k;\n}\n"
        )
        return f"layer{i}"

    # -- the forward program --------------------------------------------------------------------
    def program(self) -> None:  # noqa: C901 - one branch per op
        art, shapes, size = self.art, self.shapes, lambda s: int(np.prod(s))
        buf_sizes, slot_sizes, slot_of, free = [0, 0], [], {}, []
        # The input: fp32 path, buffer 1; integer path, the raw uint8 frame or the observation's
        # own int16 (int8) codes in obs_q, since hidden int8 activations cannot hold them.
        loc = 1
        if not self.integer:
            buf_sizes[1] = size(shapes[0])
            in_t, x = "float", "buf1"
        elif art.image:
            in_t, x = "uint8_t", "obs"
        else:
            in_t, x = self.input_t, "obs_q"
        out_ops = art.output_op
        for op_i, (op, s_in, s_out) in enumerate(
            zip(art.ops, shapes[:-1], shapes[1:], strict=True)
        ):
            kind, n = op["op"], size(s_out)
            if kind in ("linear", "conv2d", "maxpool"):
                dst = 0 if loc != 0 else 1
                y = "acc" if (self.integer and op_i == out_ops) else f"buf{dst}"
                if kind == "linear":
                    fn = self.linear(op_i, op["layer"], in_t)
                    self.body.append(f"    {fn}({x}, {y});\n")
                elif kind == "conv2d":
                    fn = self.conv(op_i, op["layer"], op, s_in, s_out, in_t, x == "obs")
                    self.body.append(f"    {fn}({x}, {y});\n")
                else:
                    t = "q" if self.integer else "f"
                    self.helpers.add(f"maxpool_{t}")
                    (kh, kw), (sh, sw), (ph, pw) = op["kernel"], op["stride"], op["padding"]
                    self.body.append(
                        f"    maxpool_{t}({x}, {s_in[0]}, {s_in[1]}, {s_in[2]}, {y}, {s_out[1]}, "
                        f"{s_out[2]}, {kh}, {kw}, {sh}, {sw}, {ph}, {pw});\n"
                    )
                if not (self.integer and op_i == out_ops):
                    buf_sizes[dst] = max(buf_sizes[dst], n)
                loc, x, in_t = dst, f"buf{dst}", self.act_t
            elif kind == "relu":
                fused = (
                    self.integer and op_i > 0 and art.ops[op_i - 1]["op"] in ("linear", "conv2d")
                )
                if not fused:  # a layer followed by a ReLU clamps at 0 in its requantization
                    t = "q" if self.integer else "f"
                    self.helpers.add(f"relu_{t}")
                    self.body.append(f"    relu_{t}({x}, {n});\n")
            elif kind == "tanh":
                if not self.integer:
                    self.helpers.add("tanh")
                    self.body.append(f"    {{ int i; for (i = 0; i < {n}; ++i) "
                                     f"{x}[i] = tanhf({x}[i]); }}\n")  # fmt: skip
            elif kind == "save":
                k = free.pop() if free else len(slot_sizes)
                if k == len(slot_sizes):
                    slot_sizes.append(0)
                slot_sizes[k] = max(slot_sizes[k], n)
                slot_of[op["slot"]] = k
                t = "q" if self.integer else "f"
                self.helpers.add(f"copy_{t}")
                self.body.append(f"    copy_{t}(slot{k}, {x}, {n});\n")
            elif kind == "add":
                k = slot_of[op["slot"]]
                free.append(k)
                if self.integer:
                    ap = self.plan.ops[op_i]
                    self.helpers.add("add_q")
                    self.body.append(f"    add_q({x}, slot{k}, {n}, {ap.mx}, {ap.mr}, {ap.k});\n")
                else:
                    self.helpers.add("add_f")
                    self.body.append(f"    add_f({x}, slot{k}, {n});\n")
            # flatten: CHW is already the row-major order torch flattens
        self.out_loc = x
        self.buffers = [
            f"static {self.act_t} buf{j}[{m}];\n" for j, m in enumerate(buf_sizes) if m > 0
        ]
        self.buffers += [f"static {self.act_t} slot{k}[{m}];\n" for k, m in enumerate(slot_sizes)]
        if self.integer and not art.image:
            self.buffers.insert(0, f"static {self.input_t} obs_q[{size(shapes[0])}];\n")
        n_scratch, n_host = getattr(self, "scratch", 0), getattr(self, "host_scratch", 0)
        decl = "static int32_t scratch[{}]; /* conv accumulators */\n"
        if n_host > n_scratch:  # the host build of the unpadded convs needs more (or any)
            self.buffers.append(f"#if !({M_PROFILE})\n{decl.format(n_host)}"
                                + (f"#else\n{decl.format(n_scratch)}" if n_scratch else "")
                                + "#endif\n")  # fmt: skip
        elif n_scratch:
            self.buffers.append(decl.format(n_scratch))

    def _input(self) -> str:
        """Copy the observation into buffer 1 (CHW, float) or quantize it into obs_q."""
        art = self.art
        n = int(np.prod(art.obs["shape"]))
        if self.integer:
            if art.image:
                return ""
            q = f"{self.plan.input_qmax}.0f"
            return (f"    {{\n        int i;\n        for (i = 0; i < {n}; ++i) {{\n"
                    f"            float v = obs[i] * {_flt(self.plan.inv_input_scale)};\n"
                    f"            if (v > {q}) v = {q};\n"
                    f"            if (v < -{q}) v = -{q};\n"
                    f"            obs_q[i] = ({self.input_t})(v >= 0.0f ? (int32_t)(v + 0.5f) : "
                    "(int32_t)(v - 0.5f));\n        }\n    }\n")  # fmt: skip
        div = f" / {_flt(art.obs['divide'])}" if art.obs.get("divide") else ""
        if art.obs.get("layout") == "HWC":
            c, h, w = art.obs["shape"]
            return (f"    {{ int ch, i; for (ch = 0; ch < {c}; ++ch) for (i = 0; i < {h * w}; ++i)\n"
                    f"        buf1[ch * {h * w} + i] = obs[i * {c} + ch]{div}; }}\n")  # fmt: skip
        return f"    {{ int i; for (i = 0; i < {n}; ++i) buf1[i] = obs[i]{div}; }}\n"

    def source(self, header_name: str) -> tuple[str, str]:
        art, p = self.art, self.p
        self.program()
        n_out, discrete = art.n_outputs, art.head["kind"] == "argmax"
        out_kind, out_what, act_what = {
            "argmax": ("Q-values / logits", "Q-values / logits",
                       "action[0] = argmax index (also returned)"),
            "box": ("tanh-squashed actions", "actions in [-1, 1]",
                    "rescaled to the action bounds; returns 0"),
            "clip": ("mean actions", "the Gaussian's mean action",
                     "the mean clipped to the action bounds; returns 0"),
        }[art.head["kind"]]  # fmt: skip
        obs_t = "uint8_t" if (self.integer and art.image) else "float"
        mode = "int8 activations, int32 accumulators" if self.integer else "fp32 activations"
        P = p.upper()
        guard = header_guard(header_name, p)
        acc_decl = (f"/* The output layer's int32 accumulators (bias included): out = tanh/identity"
                    f"(acc * scale). */\nvoid {p}_accumulators(const {obs_t} *obs, int32_t *acc);\n"
                    if self.integer else "")  # fmt: skip
        header = f"""/* nnc4rl {art.algo.upper()} policy: int{art.bits} weights, {mode}.
 * Generated by `nnc4rl export --format c`; see nnc4rl/export/FORMAT.md. C99, libc + libm only. */
#ifndef {guard}
#define {guard}

#include <stdint.h>

#define {P}_OBS_SIZE {int(np.prod(art.obs["shape"]))}    /* {obs_t} values in one observation (env layout) */
#define {P}_OUTPUT_SIZE {n_out}    /* {out_kind} */
#define {P}_ACTION_SIZE {art.action_size}
#define {P}_DISCRETE {int(discrete)}
#define {P}_INTEGER {int(self.integer)}

/* Network outputs for one observation: {out_what}. Returns 0. */
int {p}_forward(const {obs_t} *obs, float *out);
/* The env action: {act_what}. */
int {p}_act(const {obs_t} *obs, float *action);
{acc_decl}
#endif
"""
        helpers = []
        for name in sorted(self.helpers):
            if name.startswith("code"):
                helpers.append(_unpack_helper(int(name[4:])))
            elif name.startswith("maxpool_"):
                t = name[-1]
                helpers.append(_MAXPOOL.format(t=t, T="float" if t == "f" else "int8_t",
                                               low="-INFINITY" if t == "f" else "-128"))  # fmt: skip
            elif name != "tanh":
                helpers.append(_HELPERS[name])
        needs_math = any(op["op"] == "tanh" for op in art.ops) or "maxpool_f" in self.helpers
        parts = [
            f"/* nnc4rl {art.algo.upper()} policy ({_comment(art.info.get('source', 'artifact'))}): "
            f"{len(art.layers)} layers, sparsity {art.sparsity():.4f}, int{art.bits} weights, "
            f"{mode}. */\n#include \"{header_name}\"\n"
            + ("#include <math.h>\n" if needs_math else "") + "#include <stdint.h>\n"
            + (DSP_INCLUDE if getattr(self, "dsp", False) else "") + NOINLINE_MACRO + "\n",
            *helpers, "\n", *self.data, "\n", *self.buffers, "\n", *self.funcs, "\n",
        ]  # fmt: skip
        if self.integer:
            parts.append(f"void {p}_accumulators(const {obs_t} *obs, int32_t *acc)\n{{\n")
            parts.append(self._input())
            parts += self.body
            lp = self.plan.ops[art.output_op]
            parts.append("}\n\n")
            parts.append(_array("float", "OUT_SCALE", lp.out_scale, _flt, 6))
            squash = "tanhf((float)acc[i] * OUT_SCALE[i])" if art.squashed else (
                "(float)acc[i] * OUT_SCALE[i]")  # fmt: skip
            parts.append(
                f"\nint {p}_forward(const {obs_t} *obs, float *out)\n{{\n"
                f"    int32_t acc[{n_out}];\n    int i;\n    {p}_accumulators(obs, acc);\n"
                f"    for (i = 0; i < {n_out}; ++i) out[i] = {squash};\n    return 0;\n}}\n\n"
            )
        else:
            parts.append(f"int {p}_forward(const float *obs, float *out)\n{{\n    int i;\n")
            parts.append(self._input())
            parts += self.body
            parts.append(f"    for (i = 0; i < {n_out}; ++i) out[i] = {self.out_loc}[i];\n"
                         "    return 0;\n}\n\n")  # fmt: skip
        if discrete:
            parts.append(
                f"int {p}_act(const {obs_t} *obs, float *action)\n{{\n"
                f"    float q[{n_out}];\n    int i, best = 0;\n    {p}_forward(obs, q);\n"
                f"    for (i = 1; i < {n_out}; ++i) if (q[i] > q[best]) best = i;\n"
                "    action[0] = (float)best;\n    return best;\n}\n"
            )
        elif art.head["kind"] == "clip":  # SB3's np.clip of an unsquashed Gaussian's mean
            parts.append(_array("float", "ACTION_LOW", np.asarray(art.head["low"], np.float32),
                                _flt, 6))  # fmt: skip
            parts.append(_array("float", "ACTION_HIGH", np.asarray(art.head["high"], np.float32),
                                _flt, 6))  # fmt: skip
            parts.append(
                f"\nint {p}_act(const {obs_t} *obs, float *action)\n{{\n"
                f"    float a[{n_out}];\n    int i;\n    {p}_forward(obs, a);\n"
                f"    for (i = 0; i < {n_out}; ++i)\n"
                "        action[i] = a[i] < ACTION_LOW[i] ? ACTION_LOW[i] : "
                "(a[i] > ACTION_HIGH[i] ? ACTION_HIGH[i] : a[i]);\n"
                "    return 0;\n}\n"
            )
        else:
            low = np.asarray(art.head["low"], np.float32)
            rng = (np.asarray(art.head["high"], np.float32) - low).astype(np.float32)
            parts.append(_array("float", "ACTION_LOW", low, _flt, 6))
            parts.append(_array("float", "ACTION_RANGE", rng, _flt, 6))
            parts.append(
                f"\nint {p}_act(const {obs_t} *obs, float *action)\n{{\n"
                f"    float a[{n_out}];\n    int i;\n    {p}_forward(obs, a);\n"
                f"    for (i = 0; i < {n_out}; ++i)\n"
                "        action[i] = ACTION_LOW[i] + (0.5f * (a[i] + 1.0f)) * ACTION_RANGE[i];\n"
                "    return 0;\n}\n"
            )
        return "".join(parts), header


def c_source(
    art: Artifact, header_name: str = "policy.h", prefix: str = DEFAULT_PREFIX,
    integer: bool = False, encoding: str | None = None,
) -> tuple[str, str]:  # fmt: skip
    """The ``(source, header)`` texts of ``art``.

    :param prefix: prefix of the public symbols and macros (a C identifier).
    :param integer: the full-integer path (the artifact must be calibrated).
    :param encoding: force one storage encoding for every layer (benchmarks: ``dense`` is the
        dense code of the same network); default: each layer's smallest.
    """
    return _Gen(art, prefix, integer, encoding).source(header_name)


def save_c(
    art: Artifact, path: str | Path, prefix: str = DEFAULT_PREFIX, integer: bool = False,
    encoding: str | None = None,
) -> tuple[Path, Path]:  # fmt: skip
    """Write ``PATH.c`` and ``PATH.h`` (``path`` must end in ``.c``), each atomically; returns
    both paths."""
    path = Path(path)
    if path.suffix != ".c":
        raise ArtifactError(
            f"--out {str(path)!r} is invalid for --format c: give a path ending in .c"
        )
    header_path = path.with_suffix(".h")
    source, header = c_source(art, header_path.name, prefix, integer, encoding)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(header_path, header)
    write_atomic(path, source)
    return path, header_path

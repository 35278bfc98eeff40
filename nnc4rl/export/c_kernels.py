"""Integer-path C kernels of the C export: requantization, fully-connected and unpadded conv
layers, fast on a Cortex-M4 and bit-exact with :mod:`nnc4rl.export.integer` everywhere.

Only *how* C computes is chosen here, never *what*: every kernel evaluates exactly the integer
arithmetic of FORMAT.md "Integer path", so the host, the M4 and the numpy reference agree bit for
bit (tests/test_mcu.py checks each kernel kind on the M4).

* Requantization (:func:`requant_function`), once per output: ``clamp((acc * m + 2^(s-1)) >> s)``.
  With ``s = 32 + t``, ``t >= 1``: ``(acc * m + 2^(s-1)) >> s == ((acc * m >> 32) + 2^(t-1)) >> t``
  exactly (``2^(s-1)`` is a multiple of ``2^32``, and floor divisions compose), so the 64-bit
  variable shift becomes the high word of one 32x32 -> 64 multiply (SMULL on the M4), an add and
  a constant shift; a layer whose outputs share ``(m, s)`` (per-tensor scales) gets them as
  literals. ``s <= 32`` keeps the 64-bit form.
* Fully-connected (:func:`linear_kernel`), one of two kernels per layer, chosen by the modelled
  M4 instruction count (:func:`modelled_instructions`, constants measured under QEMU), ties by
  bytes; the choice and both figures go in the layer's comment:

  - ``csr``: the non-zeros row by row, int8 values and uint8 (<= 256 columns) or uint16 column
    indices read sequentially, a per-row uint8 / uint16 count: cost proportional to the
    non-zeros plus a few instructions per output.
  - ``dense``: every weight; int8 activations use the DSP extension where the compiler has it
    (``__ARM_FEATURE_DSP``: ``__sxtb16`` unpacks two int8 pairs of a word, ``__smlad`` does two
    16x16 MACs into the int32 accumulator, CMSIS-NN style; 4 rows at a time share each
    activation word's load and unpacking) and the portable loop elsewhere.
    ``__smlad`` wraps modulo 2^32 like the int32 sum, and every partial sum fits int32
    (:func:`nnc4rl.export.integer._layer_plan` bounds ``|bias| + sum |w| max|x|``), so both
    builds give the same accumulator.
  ``csr`` runs 4 non-zeros a loop (each row padded to a multiple of 4 with zero weights) where
  a layer has :data:`CSR_UNROLL_MIN` rows or more and they average as many non-zeros.
* Conv on a Cortex-M: :func:`unrolled_conv_kernel`, straight-line code per output channel (the
  weights constants, the input offsets immediates, a block of output positions in registers),
  where its code fits :data:`UNROLL_MAX_BYTES`; else :func:`conv_kernel`, each output channel
  over its non-zero weights read as a stream, blocks of output positions sharing each weight's
  load. The dense code of the same net (every weight) runs, with the DSP extension,
  :func:`im2col_conv_kernel` (CMSIS-NN style: the receptive fields of 2 output positions
  gathered into int16 columns, 2 output channels at a time over both with ``__smlad``, the
  weights reordered to the columns' order at export; exact for the reason the dense FC kernel
  is), and the weight-stream loop without it.
* Biases are int16 where they fit (:func:`bias_array`), int32 otherwise. Layer functions are kept
  out of line (``NOINLINE``): inlined into one function, gcc folds the activation buffers'
  addresses into immediate offsets and runs out of registers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nnc4rl.export.model import ArtifactError, Layer

# Modelled Cortex-M4 instructions (gcc -Os, measured under QEMU with benchmarks/bench_mcu.py on
# the 98 % Hopper-sized actor): per non-zero and per output row of ``csr`` (the one-a-loop
# form; the 4-a-loop one runs about 5 a non-zero), per weight and per output row of ``dense``
# (int8 activations with the DSP extension: 1.5 in the 4-row kernel, 48 instructions for 32
# MACs, 2.4 in the one-row kernel of the rows left over; int16 inputs run the portable loop).
CSR_PER_NNZ, CSR_PER_ROW = 6.0, 12.0
DENSE_PER_MAC, DENSE_PER_MAC_1, DENSE_PER_MAC_16, DENSE_PER_ROW = 1.5, 2.4, 4.0, 14.0
KERNELS = ("csr", "dense")
CSR_UNROLL_MIN = 16  # rows, and mean non-zeros a row, from which csr runs 4 non-zeros a loop
DENSE_ROWS = 4  # rows of the DSP dense kernel sharing each activation word
# The unrolled sparse conv (:func:`unrolled_conv_kernel`): flash bytes of code per non-zero and
# output position of a block (measured: gcc -Os, ldrb.w / ldrsb.w + mla, 4 bytes each, and the
# weight's constant), the most positions a block (their accumulators, the loaded values and
# two pointers fill the M4's registers) and the code a layer may take before the compact
# weight-stream kernel (:func:`conv_kernel`) runs it instead.
UNROLL_BYTES_PER_MAC, UNROLL_MAX_P, UNROLL_MAX_BYTES = 9, 9, 96 * 1024
# The dense DSP conv (:func:`im2col_conv_kernel`): the input elements its im2col gather copies
# a loop, and the column elements a loop of its dot product (weight rows padded to a multiple)
IM2COL_MAX_RUN, IM2COL_K_STEP = 64, 8

DSP_GUARD = "defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32)"
DSP_INCLUDE = (
    f"#if {DSP_GUARD}\n#include <arm_acle.h>\n#include <string.h>\n"
    "/* SXTB16 of the word rotated by 8 (bytes 1 and 3): one instruction, which gcc 12 does not\n"
    "   combine from __sxtb16 of a rotation */\n"
    "static int32_t sxtb16_ror8(uint32_t v)\n"
    '{ int32_t r; __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v)); return r; }\n'
    "#endif\n"
)
# Layer functions stay out of line: inlined into one function, gcc -Os/-O2 folds the activation
# buffers' addresses into immediate offsets (an extra add per activation load) and spills
# (noclone: nor specialised on those constant addresses).
# The requantization, a few instructions, is always inlined (gcc -Os calls it otherwise).
NOINLINE_MACRO = (
    "#if defined(__clang__)\n#define NOINLINE __attribute__((noinline))\n"
    "#elif defined(__GNUC__)\n#define NOINLINE __attribute__((noinline, noclone))\n"
    "#else\n#define NOINLINE\n#endif\n"
    "#if defined(__GNUC__)\n#define INLINE inline __attribute__((always_inline))\n"
    "#else\n#define INLINE inline\n#endif\n"
)


def _i32(v: int) -> str:
    v = int(v)
    return f"{v}" if v != -(2**31) else "(-2147483647 - 1)"


def _array(ctype: str, name: str, values, per_line: int = 16) -> str:
    vals = [str(v) for v in np.asarray(values).reshape(-1).tolist()] or ["0"]
    lines = [", ".join(vals[i : i + per_line]) for i in range(0, len(vals), per_line)]
    body = ",\n    ".join(lines)
    return f"static const {ctype} {name}[{len(vals)}] = {{\n    {body}\n}};\n"


def bias_ctype(bias: np.ndarray) -> str:
    """``int16_t`` where every accumulator-unit bias fits it, else ``int32_t``."""
    b = np.asarray(bias, np.int64)
    small = b.size == 0 or (b.min() >= -(2**15) and b.max() < 2**15)
    return "int16_t" if small else "int32_t"


def bias_array(name: str, bias: np.ndarray) -> str:
    """The accumulator-unit biases in the narrowest of int16 / int32 that holds them (loaded
    with LDRSH instead of LDR: same cost, half the flash)."""
    b = np.asarray(bias, np.int64)
    return _array(bias_ctype(b), name, [_i32(v) for v in b], 8)


def requant_function(name: str, mult: np.ndarray, shift: np.ndarray, lo: int) -> tuple[str, str]:
    """``(data, function)``: ``static int8_t NAME(int32_t acc, int r)``, the requantization of
    output ``r`` (module docstring), with literals when every output shares ``(m, s)``.

    :param mult: int ``(rows,)`` multipliers in ``[2^30, 2^31)`` (0 with shift 1: output 0).
    :param shift: int ``(rows,)`` shifts in ``[1, 62]``.
    :param lo: the clamp's lower bound (0 with a fused ReLU, else -127).
    """
    mult, shift = np.asarray(mult, np.int64), np.asarray(shift, np.int64)
    uniform = bool(np.all(mult == mult[0]) and np.all(shift == shift[0]))
    # two one-sided clamps: gcc makes USAT (lo 0) / SSAT-free compares of them, no branches
    clamp = f"    h = h < {lo} ? {lo} : h;\n    return (int8_t)(h > 127 ? 127 : h);\n"
    head = f"static INLINE int8_t {name}(int32_t acc, int r)\n{{\n"
    if uniform:
        m, s = int(mult[0]), int(shift[0])
        if s > 32:
            body = (f"    int32_t h = (int32_t)(((int64_t)acc * {m}) >> 32);\n"
                    f"    (void)r;\n    h = (h + {1 << (s - 33)}) >> {s - 32};\n")  # fmt: skip
        else:
            body = (f"    int64_t h = ((int64_t)acc * {m} + ((int64_t)1 << {s - 1})) >> {s};\n"
                    "    (void)r;\n")  # fmt: skip
        return "", head + body + clamp + "}\n"
    data = _array("int32_t", f"{name}_m", [_i32(v) for v in mult], 8)
    if int(shift.min()) > 32:
        data += _array("uint8_t", f"{name}_t", shift - 32)
        body = (f"    int32_t h = (int32_t)(((int64_t)acc * {name}_m[r]) >> 32);\n"
                f"    const int t = {name}_t[r];\n    h = (h + (1 << (t - 1))) >> t;\n")  # fmt: skip
    else:
        data += _array("uint8_t", f"{name}_s", shift)
        body = (f"    const int s = {name}_s[r];\n"
                f"    int64_t h = ((int64_t)acc * {name}_m[r] + ((int64_t)1 << (s - 1))) >> s;\n")  # fmt: skip
    return data, head + body + clamp + "}\n"


def modelled_instructions(kind: str, rows: int, cols: int, nnz: int, in_bits: int) -> float:
    """Modelled Cortex-M4 instructions of one layer's kernel (constants above)."""
    if kind == "csr":
        return CSR_PER_NNZ * nnz + CSR_PER_ROW * rows
    if in_bits != 8:
        return DENSE_PER_MAC_16 * rows * cols + DENSE_PER_ROW * rows
    multi = rows - rows % DENSE_ROWS if cols >= 8 else 0  # rows of the 4-row kernel
    macs = DENSE_PER_MAC * multi * cols + DENSE_PER_MAC_1 * (rows - multi) * cols
    return macs + DENSE_PER_ROW * rows


def kernel_bytes(kind: str, rows: int, cols: int, nnz: int) -> int:
    """Flash bytes of a kernel's weight arrays (int8 values; csr: column indices and counts)."""
    if kind == "dense":
        return rows * cols
    idx = 1 if cols <= 256 else 2
    return nnz * (1 + idx) + rows * (1 if cols <= 255 else 2)


def choose_kernel(layer: Layer, in_bits: int, forced: str | None = None) -> tuple[str, str]:
    """``(kind, why)``: the kernel of an int8 layer and the comment recording the choice.

    :param forced: ``"dense"`` or ``"csr"`` (benchmarks), else the cheaper modelled cost.
    """
    rows, cols, nnz = layer.rows, layer.cols, layer.nnz
    cost = {k: modelled_instructions(k, rows, cols, nnz, in_bits) for k in KERNELS}
    size = {k: kernel_bytes(k, rows, cols, nnz) for k in KERNELS}
    kind = forced or min(KERNELS, key=lambda k: (cost[k], size[k]))
    why = (f"kernel {kind}{' (forced)' if forced else ''}: modelled M4 insn csr {cost['csr']:.0f} "
           f"/ dense {cost['dense']:.0f}, weight bytes csr {size['csr']} / dense {size['dense']}")  # fmt: skip
    return kind, why


def linear_kernel(
    i: int, layer: Layer, kind: str, in_t: str, out_t: str, bias: np.ndarray,
    store: Callable[[str], str],
) -> tuple[str, str]:  # fmt: skip
    """``(data, function)`` of ``static void layer{i}(const in_t *x, out_t *y)``.

    :param bias: int ``(rows,)`` accumulator-unit biases.
    :param store: C statement storing ``acc`` of row ``r`` given the output expression ``y[r]``.
    """
    rows, cols = layer.rows, layer.cols
    m = layer.matrix.astype(np.int8).reshape(rows, cols)
    data = bias_array(f"L{i}_b", bias)
    head = f"static NOINLINE void layer{i}(const {in_t} *x, {out_t} *y)\n{{\n"
    if kind == "csr":
        nz = m != 0
        counts = nz.sum(axis=1)
        idx_t = "uint8_t" if cols <= 256 else "uint16_t"
        unroll = rows >= CSR_UNROLL_MIN and counts.mean() >= CSR_UNROLL_MIN
        if unroll:  # each row padded to a multiple of 4 non-zeros (value 0, column 0)
            pad = -counts % 4
            vals, idx = [], []
            for r in range(rows):
                c = np.nonzero(nz[r])[0]
                vals += [m[r, c], np.zeros(pad[r], np.int8)]
                idx += [c, np.zeros(pad[r], np.int64)]
            vals, idx = np.concatenate(vals), np.concatenate(idx)
            counts = (counts + pad) // 4
        else:
            vals, idx = m[nz], np.nonzero(nz)[1]
        cnt_t = "uint8_t" if counts.max(initial=0) <= 255 else "uint16_t"
        data += _array("int8_t", f"L{i}_v", vals)
        data += _array(idx_t, f"L{i}_ci", idx)
        data += _array(cnt_t, f"L{i}_n", counts)
        if unroll:
            mac = (
                "        if (n != 0) do {\n"
                "            acc += (int32_t)v[0] * x[ci[0]];\n"
                "            acc += (int32_t)v[1] * x[ci[1]];\n"
                "            acc += (int32_t)v[2] * x[ci[2]];\n"
                "            acc += (int32_t)v[3] * x[ci[3]];\n"
                "            v += 4;\n            ci += 4;\n"
                "        } while (--n != 0);\n"
            )
        else:
            mac = "        if (n != 0) do acc += (int32_t)*v++ * x[*ci++]; while (--n != 0);\n"
        body = (
            f"    const int8_t *v = L{i}_v;\n    const {idx_t} *ci = L{i}_ci;\n"
            f"    const {cnt_t} *cnt = L{i}_n;\n    int r;\n"
            f"    for (r = 0; r < {rows}; ++r) {{\n"
            f"        int32_t acc = L{i}_b[r];\n        uint32_t n = *cnt++;\n"
            f"{mac}{store('y[r]')}    }}\n}}\n"
        )
        return data, head + body
    data += _array("int8_t", f"L{i}_v", m.reshape(-1))
    portable = f"        for (c = 0; c < {cols}; ++c) acc += (int32_t)w[c] * x[c];\n"
    rows_loop = (
        f"    for (; r < {rows}; ++r, w += {cols}) {{\n"
        f"        int32_t acc = L{i}_b[r];\n{{inner}}{store('y[r]')}    }}\n"
    )
    if in_t == "int8_t" and cols >= 8:
        one = (
            f"        for (c = 0; c + 8 <= {cols}; c += 8) {{\n"
            "            uint32_t w0, w1, x0, x1;\n"
            "            memcpy(&w0, w + c, 4);\n            memcpy(&x0, x + c, 4);\n"
            "            memcpy(&w1, w + c + 4, 4);\n            memcpy(&x1, x + c + 4, 4);\n"
            "            acc = __smlad(__sxtb16((int32_t)w0), __sxtb16((int32_t)x0), acc);\n"
            "            acc = __smlad(sxtb16_ror8(w0), sxtb16_ror8(x0), acc);\n"
            "            acc = __smlad(__sxtb16((int32_t)w1), __sxtb16((int32_t)x1), acc);\n"
            "            acc = __smlad(sxtb16_ror8(w1), sxtb16_ror8(x1), acc);\n"
            "        }\n"
            f"        for (; c < {cols}; ++c) acc += (int32_t)w[c] * x[c];\n"
        )
        # DENSE_ROWS rows at a time: each activation word loaded and unpacked once for all of
        # them (CMSIS-NN style), two SMLADs a row and word
        nr = DENSE_ROWS
        macs = "".join(
            f"            memcpy(&wv, w + {j * cols} + c, 4);\n"
            f"            a{j} = __smlad(__sxtb16((int32_t)wv), xl, a{j});\n"
            f"            a{j} = __smlad(sxtb16_ror8(wv), xh, a{j});\n"
            for j in range(nr)
        )
        tail = " ".join(f"a{j} += (int32_t)w[{j * cols} + c] * x[c];" for j in range(nr))
        stores = "".join(
            f"        {{\n        const int32_t acc = a{j};\n{store('y[r]')}        }}\n"
            f"        ++r;\n"
            for j in range(nr)
        )
        word = (  # one activation word (4 columns from c) against DENSE_ROWS weight words
            "            memcpy(&xv, x + c, 4);\n"
            "            xl = __sxtb16((int32_t)xv);\n            xh = sxtb16_ror8(xv);\n"
            f"{macs}"
        )
        multi = (
            f"    for (r = 0; r + {nr} <= {rows}; w += {nr * cols}) {{\n"
            f"        int32_t {', '.join(f'a{j} = L{i}_b[r + {j}]' for j in range(nr))};\n"
            "        uint32_t xv, wv;\n        int32_t xl, xh;\n"
            # two words a loop where the row has 8 columns: half the loop overhead
            f"        for (c = 0; c + 8 <= {cols}; ) {{\n{word}            c += 4;\n"
            f"{word}            c += 4;\n        }}\n"
            f"        for (; c + 4 <= {cols}; c += 4) {{\n{word}        }}\n"
            f"        for (; c < {cols}; ++c) {{ {tail} }}\n{stores}    }}\n"
        )
        loops = (
            f"#if {DSP_GUARD}\n{multi if rows >= nr else ''}{rows_loop.replace('{inner}', one)}"
            f"#else\n{rows_loop.replace('{inner}', portable)}#endif\n"
        )
    else:
        loops = rows_loop.replace("{inner}", portable)
    body = f"    const int8_t *w = L{i}_v;\n    int r = 0, c;\n{loops}}}\n"
    return data, head + body


def _conv_offsets(layer: Layer, s_in: tuple[int, int, int], hwc: bool) -> np.ndarray:
    """The input offset of each weight column of an unpadded conv (``s_in`` = ``(C, H, W)``):
    ``(ic H + ky) W + kx``, or ``(ky W + kx) C + ic`` for an HWC input."""
    c_in, h, w = s_in
    kh, kw = layer.codes.shape[2:]
    ic, ky, kx = np.unravel_index(np.arange(layer.cols), (c_in, kh, kw))
    return ((ky * w + kx) * c_in + ic if hwc else (ic * h + ky) * w + kx).astype(np.int64)


def _tail_blocks(width: int) -> list[int]:
    """Block sizes after blocks of 4: a 2 and / or a 1 (``width % 4`` positions)."""
    rest, out = width % 4, []
    for p in (2, 1):
        if rest >= p:
            out.append(p)
            rest -= p
    return out


def conv_kernel(
    i: int, layer: Layer, in_t: str, out_t: str, bias: np.ndarray, s_in: tuple[int, int, int],
    s_out: tuple[int, int, int], stride: tuple[int, int], hwc: bool,
    store: Callable[[str, str], str], dense: bool = False,
) -> tuple[str, str]:  # fmt: skip
    """``(data, functions)`` of an unpadded conv ``static void layer{i}(const in_t *x, out_t *y)``
    (CHW output), over each output channel's non-zero weights.

    Each non-zero weight of channel ``o`` is one uint32 word, read sequentially: its input offset
    (``(ic H + ky) W + kx``; HWC input: ``(ky W + kx) C + ic``) << 8 | its int8 code. Blocks of 8
    (then 4) adjacent output positions of a row (the ``OW % 4`` columns left: blocks of 4, 2, 1
    down the column) share each word's load and keep their accumulators in registers, so an
    output costs one bias load and one requantization, and a MAC one activation load and one
    multiply-accumulate.

    :param s_in: ``(C, H, W)`` of the input, :param s_out: ``(O, OH, OW)``.
    :param hwc: the input is the raw HWC frame stack.
    :param store: the C statement storing accumulator ``acc`` (an expression) of channel ``o``
        into the output element ``y`` (an expression).
    :param dense: every weight, zeros included (the dense code of the same network).
    """
    c_in, h, w = s_in
    o_n, oh, ow = s_out
    kh, kw = layer.codes.shape[2:]
    sh, sw = stride
    m = layer.matrix.astype(np.int8)
    col_off = _conv_offsets(layer, s_in, hwc)
    step = sw * c_in if hwc else sw  # the input distance of two adjacent output positions
    row_step = sh * w * (c_in if hwc else 1)
    nz = np.ones_like(m, bool) if dense else m != 0
    counts = nz.sum(axis=1)
    offs = col_off[np.nonzero(nz)[1]].astype(np.int64)
    if offs.max(initial=0) >= 1 << 24:
        raise ArtifactError(f"layer {layer.name}: input of {c_in * h * w} elements is too large")
    cnt_t = "uint16_t" if counts.max(initial=0) <= 0xFFFF else "uint32_t"
    data = bias_array(f"L{i}_b", bias)
    # one word a weight: its input offset << 8 | its int8 code (one load, one pointer)
    words = (offs << 8) | (m[nz].astype(np.int64) & 0xFF)
    data += _array("uint32_t", f"L{i}_wo", [f"{v}u" for v in words.tolist()], 8)
    data += _array(cnt_t, f"L{i}_n", counts)
    funcs: dict[tuple[int, int], str] = {}

    def blk(p: int, d: int) -> str:
        """``L{i}_blk{p}_{d}``: ``p`` output positions ``d`` input elements apart; the loads
        first, so that the M4 pipelines them (one cycle each after the first)."""
        name = f"L{i}_blk{p}_{d}"
        if (p, d) not in funcs:
            loads = ", ".join(f"x{j} = q[{j * d}]" for j in range(p))
            funcs[(p, d)] = (
                f"static NOINLINE void {name}(const {in_t} *x, const uint32_t *e, uint32_t n, "
                f"int32_t *acc)\n{{\n"
                f"    int32_t {', '.join(f'a{j} = acc[{j}]' for j in range(p))};\n"
                f"    if (n != 0) do {{\n        const uint32_t v = *e++;\n"
                f"        const {in_t} *q = x + (v >> 8);\n"
                f"        const int32_t wk = ((int32_t)(v & 0xFFu) ^ 0x80) - 0x80, {loads};\n"
                f"        {' '.join(f'a{j} += wk * x{j};' for j in range(p))}\n"
                f"    }} while (--n != 0);\n    {' '.join(f'acc[{j}] = a{j};' for j in range(p))}\n}}\n"
            )
        return name

    def block(p: int, d: int, x_at: str, y_at, ind: str) -> str:
        """One call of a block and the requantization of its ``p`` outputs (``y_at(j)``)."""
        stores = "".join(f"{ind}{store(y_at(j), f'acc[{j}]')}\n" for j in range(p))
        return (f"{ind}{' = '.join(f'acc[{j}]' for j in range(p))} = b;\n"
                f"{ind}{blk(p, d)}({x_at}, e, n, acc);\n{stores}")  # fmt: skip

    # rows: blocks of 8 (then one of 4) positions along x; the columns left over (ow % 4):
    # blocks of 4, 2, 1 down y
    main, wide = ow - ow % 4, ow - ow % 8
    rows = ""
    if main:
        rows += (
            f"        for (oy = 0; oy < {oh}; ++oy) {{\n"
            f"            const {in_t} *xr = x + oy * {row_step};\n"
            f"            {out_t} *yr = y + (o * {oh} + oy) * {ow};\n"
            + (f"            for (ox = 0; ox < {wide}; ox += 8) {{\n"
               + block(8, step, f"xr + ox * {step}", lambda j: f"yr[ox + {j}]",
                       "                ") + "            }\n" if wide else "")
            + (block(4, step, f"xr + {wide * step}", lambda j: f"yr[{wide + j}]",
                     "            ") if main > wide else "")
            + "        }\n"
        )  # fmt: skip
    for ox in range(main, ow):
        col = f"y + o * {oh * ow} + {ox}"
        if oh >= 4:
            rows += (
                f"        for (oy = 0; oy + 4 <= {oh}; oy += 4) {{\n"
                f"            {out_t} *yc = {col} + oy * {ow};\n"
                + block(4, row_step, f"x + oy * {row_step} + {ox * step}",
                        lambda j: f"yc[{j * ow}]", "            ")
                + "        }\n"
            )  # fmt: skip
        oy = oh - oh % 4
        for p in _tail_blocks(oh):
            rows += ("        {\n" + f"            {out_t} *yc = {col} + {oy * ow};\n"
                     + block(p, row_step, f"x + {oy * row_step + ox * step}",
                             lambda j: f"yc[{j * ow}]", "            ") + "        }\n")  # fmt: skip
            oy += p
    body = (
        f"static NOINLINE void layer{i}(const {in_t} *x, {out_t} *y)\n{{\n"
        f"    const uint32_t *e = L{i}_wo;\n"
        "    int o, oy, ox;\n    int32_t acc[8];\n"
        f"    for (o = 0; o < {o_n}; ++o) {{\n"
        f"        const uint32_t n = L{i}_n[o];\n        const int32_t b = L{i}_b[o];\n"
        f"{rows}        e += n;\n    }}\n    (void)ox;\n    (void)oy;\n}}\n"
    )
    funcs_text = "".join(funcs.values())
    if not dense:
        return data, funcs_text + body
    # the dense code: the im2col DSP kernel where the compiler has the DSP extension, the
    # weight-stream loop above elsewhere (the bias array shared)
    head = bias_array(f"L{i}_b", bias)
    d_data, d_funcs = im2col_conv_kernel(i, layer, in_t, out_t, s_in, s_out, stride, hwc, store)
    return (
        f"{head}#if {DSP_GUARD}\n{d_data}#else\n{data[len(head) :]}#endif\n",
        f"#if {DSP_GUARD}\n{d_funcs}#else\n{funcs_text}{body}#endif\n",
    )


def _gather_runs(offs: np.ndarray) -> tuple[np.ndarray, int]:
    """``(starts, length)``: the sorted input offsets ``offs`` as runs of ``length`` contiguous
    elements starting at ``starts`` (runs of 1 where they differ in length; long runs split into
    equal pieces of at most :data:`IM2COL_MAX_RUN`)."""
    breaks = np.concatenate([[0], np.nonzero(np.diff(offs) != 1)[0] + 1])
    lens = np.diff(np.concatenate([breaks, [len(offs)]]))
    if len(lens) == 0 or np.any(lens != lens[0]):
        return offs, 1
    n = int(lens[0])
    piece = max(d for d in range(1, min(n, IM2COL_MAX_RUN) + 1) if n % d == 0)
    starts = (offs[breaks][:, None] + np.arange(0, n, piece)[None, :]).reshape(-1)
    return starts, piece


def im2col_conv_kernel(
    i: int, layer: Layer, in_t: str, out_t: str, s_in: tuple[int, int, int],
    s_out: tuple[int, int, int], stride: tuple[int, int], hwc: bool,
    store: Callable[[str, str], str],
) -> tuple[str, str]:  # fmt: skip
    """``(data, functions)`` of the dense unpadded conv ``static void layer{i}(const in_t *x,
    out_t *y)`` (CHW output) with the DSP extension, CMSIS-NN style; the bias array
    ``L{i}_b`` is the caller's.

    Two output positions at a time (an odd last one fills both columns, its outputs stored
    twice) have their receptive fields gathered (im2col) into the two halves of the int16
    column buffer ``L{i}_col``, in increasing input-offset order (runs of contiguous input
    elements, copied by straight-line code); the weights are reordered to that order at export,
    each row padded with zeros to a multiple of :data:`IM2COL_K_STEP` (the column's padding stays
    0) and an odd number of channels padded with a zero row. Then two output channels at a time
    run over both columns (``L{i}_dot``, CMSIS-NN's 2 x 2 kernel): each weight word (4 int8) is
    unpacked once by ``__sxtb16`` / ``sxtb16_ror8`` (bytes 0, 2 and 1, 3: the 4 weights of a
    word are stored in the order 0, 2, 1, 3 so that the pairs meet the column's words of
    elements 0, 1 and 2, 3) for both positions, and each column word is loaded once for both
    channels: 8 ``__smlad`` for 2 weight and 4 column loads and 4 unpackings. The exactness
    argument is the dense fully-connected kernel's. Any input type (uint8 frames, int8
    activations, int16 codes) fits the int16 column.
    """
    c_in, h, w = s_in
    o_n, oh, ow = s_out
    sh, sw = stride
    m = layer.matrix.astype(np.int8)
    col_off = _conv_offsets(layer, s_in, hwc)
    perm = np.argsort(col_off, kind="stable")
    offs = col_off[perm]
    k = len(offs)
    kp = -(-k // IM2COL_K_STEP) * IM2COL_K_STEP
    o_p = o_n + o_n % 2
    wts = np.zeros((o_p, kp), np.int8)
    wts[:o_n, :k] = m[:, perm]
    wts = wts.reshape(o_p, kp // 4, 4)[:, :, [0, 2, 1, 3]]  # sxtb16 pairs: (w0, w1), (w2, w3)
    starts, run = _gather_runs(offs)
    step = sw * c_in if hwc else sw
    row_step = sh * w * (c_in if hwc else 1)
    ro_t = "uint16_t" if starts.max(initial=0) <= 0xFFFF else "uint32_t"
    data = _array("int8_t", f"L{i}_v", wts.reshape(-1))
    data += _array(ro_t, f"L{i}_ro", starts)
    data += f"static int16_t L{i}_col[{2 * kp}]; /* im2col columns of 2 output positions */\n"
    copy = "".join(
        "        " + " ".join(f"c[{j}] = q[{j}];" for j in range(a, min(run, a + 8))) + "\n"
        for a in range(0, run, 8)
    )
    gather = (
        f"static NOINLINE void L{i}_im2col(const {in_t} *x, int16_t *c)\n{{\n"
        f"    const {ro_t} *ro = L{i}_ro;\n    int r;\n"
        f"    for (r = 0; r < {len(starts)}; ++r, c += {run}) {{\n"
        f"        const {in_t} *q = x + ro[r];\n{copy}    }}\n}}\n"
    )
    macs = "".join(
        f"        memcpy(&wv, w + {j}, 4);\n"
        "        wl = __sxtb16((int32_t)wv);\n        wh = sxtb16_ror8(wv);\n"
        f"        memcpy(&wv, w + {kp + j}, 4);\n"
        "        vl = __sxtb16((int32_t)wv);\n        vh = sxtb16_ror8(wv);\n"
        f"        memcpy(&u, c + {j}, 4);\n        memcpy(&v, c + {j + 2}, 4);\n"
        "        a0 = __smlad(wl, u, a0);\n        a1 = __smlad(vl, u, a1);\n"
        "        a0 = __smlad(wh, v, a0);\n        a1 = __smlad(vh, v, a1);\n"
        f"        memcpy(&u, c + {kp + j}, 4);\n        memcpy(&v, c + {kp + j + 2}, 4);\n"
        "        b0 = __smlad(wl, u, b0);\n        b1 = __smlad(vl, u, b1);\n"
        "        b0 = __smlad(wh, v, b0);\n        b1 = __smlad(vh, v, b1);\n"
        for j in range(0, IM2COL_K_STEP, 4)
    )
    dot = (
        f"static NOINLINE void L{i}_dot(const int16_t *c, const int8_t *w, int32_t *acc)\n{{\n"
        "    int32_t a0 = acc[0], a1 = acc[1], b0 = acc[2], b1 = acc[3];\n"
        f"    const int16_t *const end = c + {kp};\n"
        "    do {\n        int32_t u, v, wl, wh, vl, vh;\n        uint32_t wv;\n"
        f"{macs}        c += {IM2COL_K_STEP};\n        w += {IM2COL_K_STEP};\n"
        "    } while (c != end);\n"
        "    acc[0] = a0;\n    acc[1] = a1;\n    acc[2] = b0;\n    acc[3] = b1;\n}\n"
    )
    n_pos = oh * ow
    q_at = "p + 1" if n_pos % 2 == 0 else f"p + 1 < {n_pos} ? p + 1 : p"

    def at(pos: str) -> str:
        return f"x + ({pos}) / {ow} * {row_step} + ({pos}) % {ow} * {step}"

    stores = (
        f"                {store(f'y[o * {n_pos} + p]', 'acc[0]')}\n"
        f"                {store(f'y[o * {n_pos} + q]', 'acc[2]')}\n"
    )
    second = (
        "                ++o;\n"
        f"                {store(f'y[o * {n_pos} + p]', 'acc[1]')}\n"
        f"                {store(f'y[o * {n_pos} + q]', 'acc[3]')}\n"
    )
    pairs = (
        f"            for (o = 0; o + 2 <= {o_n}; ++o, w += {2 * kp}) {{\n"
        f"                acc[0] = acc[2] = L{i}_b[o];\n"
        f"                acc[1] = acc[3] = L{i}_b[o + 1];\n"
        f"                L{i}_dot(L{i}_col, w, acc);\n{stores}{second}            }}\n"
    )
    last = (
        f"            acc[0] = acc[2] = L{i}_b[o];\n            acc[1] = acc[3] = 0;\n"
        f"            L{i}_dot(L{i}_col, w, acc);\n{stores.replace('    ' * 4, '    ' * 3)}"
    )
    first = "            o = 0;\n"
    body = (
        f"/* im2col + 2 channels x 2 positions a SMLAD loop */\n"
        f"static NOINLINE void layer{i}(const {in_t} *x, {out_t} *y)\n{{\n"
        f"    int p, o;\n    int32_t acc[4];\n"
        f"    for (p = 0; p < {n_pos}; p += 2) {{\n"
        f"        const int q = {q_at};\n"
        f"        const int8_t *w = L{i}_v;\n"
        f"        L{i}_im2col({at('p')}, L{i}_col);\n"
        f"        L{i}_im2col({at('q')}, L{i}_col + {kp});\n"
        "        {\n"
        f"{pairs if o_n >= 2 else first}{last if o_n % 2 else ''}"
        "        }\n    }\n}\n"
    )
    return data, gather + dot + body


def unrolled_block(ow: int, nnz: int) -> int:
    """The output positions of one call of an unrolled conv channel (:func:`unrolled_conv_kernel`),
    0 when its code would pass :data:`UNROLL_MAX_BYTES`: the whole row up to
    :data:`UNROLL_MAX_P`, else the largest divisor of the row from 4 up, else
    :data:`UNROLL_MAX_P` (the last block then overlaps the one before)."""
    if ow <= UNROLL_MAX_P:
        p = ow
    else:
        p = max([d for d in range(4, UNROLL_MAX_P + 1) if ow % d == 0], default=UNROLL_MAX_P)
    return p if UNROLL_BYTES_PER_MAC * nnz * p <= UNROLL_MAX_BYTES else 0


def unrolled_conv_kernel(
    i: int, layer: Layer, in_t: str, out_t: str, bias: np.ndarray, s_in: tuple[int, int, int],
    s_out: tuple[int, int, int], stride: tuple[int, int], hwc: bool,
    store: Callable[[str, str], str], p: int,
) -> tuple[str, str]:  # fmt: skip
    """``(data, functions)`` of an unpadded sparse conv ``static void layer{i}(const in_t *x,
    out_t *y)`` (CHW output) as straight-line code: one function per output channel, its
    non-zero weights constants and their input offsets immediates, computes ``p`` adjacent
    output positions of a row (the accumulators in registers: one load and one multiply-add a
    MAC, no weight stream to decode); the layer function calls it block by block and
    requantizes. Offsets past the 4095 of an immediate move the base pointer.

    :param p: positions a call (:func:`unrolled_block`); the other parameters as
        :func:`conv_kernel`'s.
    """
    c_in, h, w = s_in
    o_n, oh, ow = s_out
    sh, sw = stride
    m = layer.matrix.astype(np.int8)
    col_off = _conv_offsets(layer, s_in, hwc)
    step = sw * c_in if hwc else sw
    row_step = sh * w * (c_in if hwc else 1)
    data = bias_array(f"L{i}_b", bias)
    starts = list(range(0, ow - p + 1, p))
    if starts[-1] + p < ow:
        starts.append(ow - p)  # an overlapping last block: its first outputs are written twice
    data += _array("uint8_t", f"L{i}_st", starts)
    funcs = []
    for o in range(o_n):
        cols = np.nonzero(m[o])[0]
        offs = col_off[cols]
        lines, base = [], 0
        for k in np.argsort(offs, kind="stable"):
            off, wk = int(offs[k]), int(m[o, cols[k]])
            if off - base + (p - 1) * step > 4095:
                base = off
                lines.append(f"    q = x + {base};\n")
            loads = ", ".join(f"t{j} = q[{off - base + j * step}]" for j in range(p))
            macs = " ".join(f"a{j} += {wk} * t{j};" for j in range(p))
            lines.append(f"    {{ const int32_t {loads};\n      {macs} }}\n")
        funcs.append(
            f"static NOINLINE void L{i}_c{o}(const {in_t} *x, int32_t b, int32_t *r)\n{{\n"
            f"    const {in_t} *q = x;\n    int32_t {', '.join(f'a{j} = b' for j in range(p))};\n"
            + "".join(lines)
            + f"    {' '.join(f'r[{j}] = a{j};' for j in range(p))}\n    (void)q;\n}}\n"
        )
    fn_t = "void (*const"
    table = (f"static {fn_t} L{i}_c[{o_n}])(const {in_t} *, int32_t, int32_t *) = {{\n    "
             + ",\n    ".join(", ".join(f"L{i}_c{o}" for o in range(a, min(o_n, a + 8)))
                              for a in range(0, o_n, 8)) + "\n};\n")  # fmt: skip
    stores = "".join(f"                {store(f'yr[{j}]', f'acc[{j}]')}\n" for j in range(p))
    body = (
        f"static NOINLINE void layer{i}(const {in_t} *x, {out_t} *y)\n{{\n"
        f"    int o, oy, k;\n    int32_t acc[{p}];\n"
        f"    for (o = 0; o < {o_n}; ++o) {{\n"
        f"        const int32_t b = L{i}_b[o];\n"
        f"        {fn_t} f)(const {in_t} *, int32_t, int32_t *) = L{i}_c[o];\n"
        f"        for (oy = 0; oy < {oh}; ++oy)\n"
        f"            for (k = 0; k < {len(starts)}; ++k) {{\n"
        f"                {out_t} *yr = y + (o * {oh} + oy) * {ow} + L{i}_st[k];\n"
        f"                f(x + oy * {row_step} + L{i}_st[k] * {step}, b, acc);\n{stores}"
        "            }\n    }\n}\n"
    )
    return data, "".join(funcs) + table + body

"""The DSP kernels on the host, their three intrinsics written out in C: the dense conv's im2col
kernel (:func:`nnc4rl.export.c_kernels.im2col_conv_kernel`) over the shapes the Nature CNN does
not have (odd and single output channels, weight rows that are not a multiple of 8, one output
position, int16 inputs) and the dense fully-connected one over row and column counts that reach
every loop of it: the accumulators of the direct sum, exactly. tests/test_mcu.py runs both on
the M4."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import numpy as np
import pytest

from nnc4rl.export.c_build import STRICT_FLAGS, compiler
from nnc4rl.export.c_kernels import _conv_offsets, im2col_conv_kernel

# SXTB16, SXTB16 ROR #8 and SMLAD as the Armv7E-M manual defines them (SMLAD wraps mod 2^32)
INTRINSICS = r"""#include <stdint.h>
#include <stdio.h>
#include <string.h>
#define NOINLINE
static int32_t __sxtb16(int32_t v)
{
    const uint32_t u = (uint32_t)v;
    const int16_t lo = (int8_t)(u & 0xFFu), hi = (int8_t)((u >> 16) & 0xFFu);
    return (int32_t)(((uint32_t)(uint16_t)hi << 16) | (uint16_t)lo);
}
static int32_t sxtb16_ror8(uint32_t v) { return __sxtb16((int32_t)((v >> 8) | (v << 24))); }
static int32_t __smlad(int32_t a, int32_t b, int32_t acc)
{
    const int32_t al = (int16_t)(a & 0xFFFF), ah = (int16_t)((uint32_t)a >> 16);
    const int32_t bl = (int16_t)(b & 0xFFFF), bh = (int16_t)((uint32_t)b >> 16);
    return (int32_t)((uint32_t)acc + (uint32_t)(al * bl) + (uint32_t)(ah * bh));
}
"""
RANGES = {"int8_t": (-127, 128), "int16_t": (-3000, 3001), "uint8_t": (0, 256)}


@pytest.mark.parametrize(
    "o_n, s_in, k, stride, hwc, in_t",
    [(3, (2, 7, 6), (3, 3), (1, 1), False, "int8_t"),  # odd channels, odd positions, K 18
     (1, (3, 5, 5), (2, 3), (2, 1), False, "int16_t"),  # one channel
     (5, (4, 9, 9), (4, 4), (2, 2), True, "uint8_t"),  # HWC frames
     (4, (5, 6, 7), (3, 2), (1, 2), True, "int8_t"),
     (2, (1, 5, 5), (5, 5), (1, 1), False, "int8_t")],  # one output position
)  # fmt: skip
def test_im2col_conv_kernel_is_the_direct_sum(tmp_path, o_n, s_in, k, stride, hwc, in_t):
    rng = np.random.default_rng(o_n)
    (c_in, h, w), (kh, kw), (sh, sw) = s_in, k, stride
    codes = rng.integers(-127, 128, (o_n, c_in, kh, kw))
    codes[rng.random(codes.shape) < 0.3] = 0
    layer = SimpleNamespace(codes=codes, matrix=codes.reshape(o_n, -1), cols=codes[0].size)
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    bias = rng.integers(-1000, 1000, o_n)
    x = rng.integers(*RANGES[in_t], h * w * c_in)  # in memory order (HWC or CHW)
    data, funcs = im2col_conv_kernel(0, layer, in_t, "int32_t", s_in, (o_n, oh, ow), stride, hwc,
                                     lambda y, acc: f"{y} = {acc};")  # fmt: skip
    n = o_n * oh * ow
    src = (
        f"{INTRINSICS}static const int16_t L0_b[{o_n}] = {{{', '.join(map(str, bias))}}};\n"
        f"{data}{funcs}static const {in_t} X[{x.size}] = {{{', '.join(map(str, x))}}};\n"
        f"static int32_t Y[{n}];\nint main(void)\n{{\n    int i;\n    layer0(X, Y);\n"
        f'    for (i = 0; i < {n}; ++i) printf("%ld\\n", (long)Y[i]);\n    return 0;\n}}\n'
    )
    (tmp_path / "k.c").write_text(src)
    exe = tmp_path / "k"
    subprocess.run([compiler(), *STRICT_FLAGS, "-Wno-unused-function", "-O1", "-o", str(exe),
                    str(tmp_path / "k.c")], check=True)  # fmt: skip
    out = np.array(subprocess.run([str(exe)], capture_output=True, text=True,
                                  check=True).stdout.split(), np.int64)  # fmt: skip
    off = _conv_offsets(layer, s_in, hwc)
    step, row = (sw * c_in, sh * w * c_in) if hwc else (sw, sh * w)
    ref = np.zeros((o_n, oh, ow), np.int64)
    for oy in range(oh):
        for ox in range(ow):
            ref[:, oy, ox] = layer.matrix @ x[oy * row + ox * step + off] + bias
    np.testing.assert_array_equal(out, ref.reshape(-1))


@pytest.mark.parametrize("rows, cols", [(5, 13), (4, 8), (9, 12), (3, 21), (6, 9), (4, 256)])
def test_dense_fc_dsp_kernel_is_the_matrix_product(tmp_path, rows, cols):
    """The DSP dense fully-connected kernel (4 rows sharing each activation word, two words a
    loop, then one, then single columns; rows left over in the one-row kernel) on the host, its
    intrinsics written out in C: the accumulators of ``W @ x + b``, exactly."""
    from nnc4rl.export.c_kernels import linear_kernel

    rng = np.random.default_rng(rows * cols)
    m = rng.integers(-127, 128, (rows, cols))
    layer = SimpleNamespace(matrix=m, rows=rows, cols=cols)
    bias = rng.integers(-5000, 5000, rows)
    x = rng.integers(-127, 128, cols)
    data, func = linear_kernel(0, layer, "dense", "int8_t", "int32_t", bias,
                               lambda y: f"        {y} = acc;\n")  # fmt: skip
    assert "__smlad" in func
    src = (
        f"{INTRINSICS}{data}{func}static const int8_t X[{cols}] = {{{', '.join(map(str, x))}}};\n"
        f"static int32_t Y[{rows}];\nint main(void)\n{{\n    int i;\n    layer0(X, Y);\n"
        f'    for (i = 0; i < {rows}; ++i) printf("%ld\\n", (long)Y[i]);\n    return 0;\n}}\n'
    )
    (tmp_path / "k.c").write_text(src)
    exe = tmp_path / "k"
    dsp = ["-D__ARM_FEATURE_DSP=1", "-D__ARM_FEATURE_SIMD32=1"]  # the DSP branch, on the host
    subprocess.run([compiler(), *STRICT_FLAGS, *dsp, "-Wno-unused-function", "-O1", "-o",
                    str(exe), str(tmp_path / "k.c")], check=True)  # fmt: skip
    out = np.array(subprocess.run([str(exe)], capture_output=True, text=True,
                                  check=True).stdout.split(), np.int64)  # fmt: skip
    np.testing.assert_array_equal(out, m @ x + bias)

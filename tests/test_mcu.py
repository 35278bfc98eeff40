"""The exported C on a Cortex-M4F instruction set: arm-none-eabi-gcc build, QEMU mps2-an386 run.

Skipped, with the reason, where the toolchain is not installed (CI installs it: .ci/run).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nnc4rl.export import artifact_from_sb3, load_policy
from nnc4rl.export.bench import atari_dqn, hopper_sized_sac
from nnc4rl.export.closed_loop import calibrate_held_out, play
from nnc4rl.export.integer import calibrate
from nnc4rl.export.mcu import missing_tools, run_on_m4

pytestmark = [
    pytest.mark.xdist_group("mcu"),
    pytest.mark.skipif(missing_tools() is not None, reason=f"Cortex-M4 check: {missing_tools()}"),
]


def test_sac_actor_on_m4_is_bit_exact_and_fits(tmp_path):
    """98 % SAC Hopper actor: int8 path <= 8 KB flash / <= 2 KB RAM on the M4, int32
    accumulators identical to the host's numpy reference; the fp32 path agrees to float rounding."""
    _, model = hopper_sized_sac(0.98)
    art = artifact_from_sb3(model, bits=8, info={"env": "Hopper-v4", "seed": 0})
    int_art = calibrate_held_out(art, episodes=1)
    obs = play(load_policy(art), art, 1, record=True)["observations"][:6]
    m4 = run_on_m4(int_art, obs, tmp_path / "int", integer=True, repeats=10)
    ref = load_policy(int_art, integer=True)
    np.testing.assert_array_equal(m4.accumulators, ref.accumulators(obs))
    np.testing.assert_allclose(m4.outputs, ref.outputs(obs), atol=1e-6)  # newlib vs numpy tanh
    np.testing.assert_allclose(m4.actions, ref.predict(obs)[0], atol=1e-6)
    size = m4.policy_size
    assert size["flash"] <= 8 * 1024 and size["ram"] <= 2 * 1024, size
    nnz = sum(la.nnz for la in art.layers)
    assert nnz < m4.instructions < 100 * nnz, m4.instructions  # at least one per weight
    fp32 = run_on_m4(art, obs, tmp_path / "fp32", integer=False, repeats=2)
    np.testing.assert_allclose(fp32.outputs, load_policy(art).outputs(obs), atol=1e-6)


DENSE_CNN_INSN_PER_MAC = 2.0  # bound of the dense Nature CNN on the M4 (the convs' DSP kernel)


def dense_macs(art) -> int:
    """Multiply-accumulates of the dense code of ``art`` (a conv's weights once per output)."""
    total = 0
    for op, s_out in zip(art.ops, art.activation_shapes()[1:], strict=True):
        if op["op"] in ("linear", "conv2d"):
            layer = art.layers[op["layer"]]
            total += layer.rows * layer.cols * (int(np.prod(s_out[1:])) or 1)
    return total


def test_nature_cnn_on_m4_is_bit_exact_and_fits(tmp_path, monkeypatch):
    """98 % Nature CNN, int8 path, uint8 frames in: <= 256 KB flash and <= 64 KB RAM; each conv
    kernel (unrolled sparse, the weight-stream sparse one, dense) and the unrolled CSR of the
    3136 -> 512 layer are bit-exact."""
    from nnc4rl.core.envs import make_envs
    from nnc4rl.export import c_kernels
    from nnc4rl.export.verify import record_observations

    _, model = atari_dqn(0.98, "cnn")
    art = artifact_from_sb3(model, bits=8)
    _, env = make_envs("PongNoFrameskip-v4")
    obs = record_observations(model, env, n=8, every=5, random_prob=0.5)
    env.close()
    int_art = calibrate(art, obs)
    m4 = run_on_m4(int_art, obs[:3], tmp_path, integer=True, repeats=2)
    ref = load_policy(int_art, integer=True)
    np.testing.assert_array_equal(m4.accumulators, ref.accumulators(obs[:3]))
    np.testing.assert_array_equal(m4.actions[:, 0], ref.predict(obs[:3])[0])
    size = m4.policy_size
    assert size["flash"] <= 256 * 1024 and size["ram"] <= 64 * 1024, size
    # the unrolled sparse conv kernel on the M4 (the host build compiles the row loop instead),
    # and the dense conv kernel of the same net (every weight), both exact
    source = (tmp_path / "policy.c").read_text()
    assert source.count("kernel unrolled sparse conv") == 3
    assert source.count("v += 4;") == 1  # the 3136 -> 512 layer's CSR, 4 non-zeros a loop
    # the weight-stream sparse conv, which runs a layer whose unrolled code would be too big
    monkeypatch.setattr(c_kernels, "UNROLL_MAX_BYTES", 0)
    stream = run_on_m4(int_art, obs[:1], tmp_path / "stream", integer=True, repeats=1)
    np.testing.assert_array_equal(stream.accumulators, ref.accumulators(obs[:1]))
    text = (tmp_path / "stream" / "policy.c").read_text()
    assert text.count("kernel sparse conv") == 3 and "unrolled" not in text
    assert m4.instructions < stream.instructions
    monkeypatch.undo()
    dense = run_on_m4(int_art, obs[:1], tmp_path / "dense", integer=True, repeats=1,
                      encoding="dense")  # fmt: skip
    np.testing.assert_array_equal(dense.accumulators, ref.accumulators(obs[:1]))
    dense_src = (tmp_path / "dense" / "policy.c").read_text()
    assert dense_src.count("kernel dense conv") == 3
    # the M4 (DSP extension) runs the im2col SMLAD kernel: far fewer instructions a MAC than
    # the weight-stream loop's 3
    assert dense_src.count("/* im2col + 2 channels x 2 positions a SMLAD loop */") == 3
    assert dense.instructions < DENSE_CNN_INSN_PER_MAC * dense_macs(int_art)
    assert m4.instructions < dense.instructions


def test_fc_kernels_and_dead_unit_removal_are_bit_exact_on_m4(tmp_path):
    """Each fully-connected kernel kind (CSR, the DSP dense one) and a dead-unit-removed 99 %
    actor give the numpy reference's accumulators on the M4; removal never costs instructions."""
    from nnc4rl.export.dead_units import remove_dead_units

    _, model = hopper_sized_sac(0.99)
    art = artifact_from_sb3(model, bits=8, info={"env": "Hopper-v4", "seed": 0})
    int_art = calibrate_held_out(art, episodes=1)
    obs = play(load_policy(art), art, 1, record=True)["observations"][:4]
    acc = load_policy(int_art, integer=True).accumulators(obs)
    small, report = remove_dead_units(int_art)
    assert report.nnz_removed > 0
    runs = {}
    for name, a, enc in (("csr", int_art, "csr8"), ("dense", int_art, "dense"),
                         ("small", small, None)):  # fmt: skip
        runs[name] = run_on_m4(a, obs, tmp_path / name, integer=True, repeats=4, encoding=enc)
        np.testing.assert_array_equal(runs[name].accumulators, acc, err_msg=name)
        source = (tmp_path / name / "policy.c").read_text()
        if enc is not None:  # every layer runs the forced kernel
            assert source.count(f"kernel {'dense' if enc == 'dense' else 'csr'} (forced)") == 3
    dense_src = (tmp_path / "dense" / "policy.c").read_text()
    assert "__smlad" in dense_src
    # the 256 x 256 layer runs the 4-row DSP kernel, the 3 x 256 output layer the one-row one
    assert dense_src.count("for (c = 0; c + 8 <= 256; ) {") == 1  # two words a loop
    assert dense_src.count("acc = __smlad(__sxtb16((int32_t)w0)") == 2
    assert runs["csr"].instructions < runs["dense"].instructions
    assert runs["small"].instructions < runs["csr"].instructions


def test_dsp_kernels_build_clean_with_clang_for_the_m4(tmp_path):
    """The DSP path (``__ARM_FEATURE_DSP``: the dense FC kernel, the dense conv's im2col one)
    compiles under clang for a Cortex-M4 with the strict flags too (gcc builds it in every M4
    test)."""
    import shutil
    import subprocess

    from nnc4rl.export.c_build import STRICT_FLAGS
    from nnc4rl.export.c_export import save_c
    from nnc4rl.export.mcu import M4_FLAGS

    if shutil.which("clang") is None or not Path("/usr/lib/arm-none-eabi/include").is_dir():
        pytest.skip("clang or the newlib headers (Debian libnewlib-arm-none-eabi) not installed")
    _, model = hopper_sized_sac(0.9)
    art = artifact_from_sb3(model, bits=8)
    obs = np.random.default_rng(0).normal(size=(8, 11)).astype(np.float32)
    c_path, _ = save_c(calibrate(art, obs), tmp_path / "p.c", integer=True, encoding="dense")

    def disassembly(src: Path) -> str:
        """``src`` compiled by clang for the M4 with the strict flags, disassembled."""
        obj = src.with_suffix(".o")
        res = subprocess.run(
            ["clang", "--target=arm-none-eabi", *M4_FLAGS, "-Os", "--sysroot=/usr/lib/arm-none-eabi",
             "-isystem", "/usr/lib/arm-none-eabi/include", *STRICT_FLAGS, "-c", "-o", str(obj),
             str(src)], capture_output=True, text=True)  # fmt: skip
        assert res.returncode == 0, res.stderr
        return subprocess.run(["arm-none-eabi-objdump", "-d", str(obj)], capture_output=True,
                              text=True, check=True).stdout  # fmt: skip

    dis = disassembly(c_path)
    assert "smlad" in dis
    # the dense conv's im2col kernel (uint8 HWC frames into the first layer, int8 CHW after)
    _, dqn = atari_dqn(0.98, "cnn")
    cnn = artifact_from_sb3(dqn, bits=8)
    frames = np.random.default_rng(0).integers(0, 256, (2, *dqn.observation_space.shape))
    cnn_c, _ = save_c(calibrate(cnn, frames.astype(np.uint8)), tmp_path / "cnn.c",
                      integer=True, encoding="dense")  # fmt: skip
    assert cnn_c.read_text().count("/* im2col + 2 channels x 2 positions a SMLAD loop */") == 3
    dis = disassembly(cnn_c)
    dot = dis[dis.index("<L0_dot>:") :]
    assert "smlad" in dot[: dot.index("\n\n")]


def test_cycle_estimate_traces_exactly_the_counted_instructions(tmp_path):
    """The traced inference has QEMU -icount's instruction count; its modelled cycles lie
    between one and three per instruction (loads, multiplies and taken branches cost more)."""
    from nnc4rl.export.mcu import estimate_cycles

    _, model = hopper_sized_sac(0.98)
    art = artifact_from_sb3(model, bits=8)
    obs = np.random.default_rng(0).normal(size=(8, 11)).astype(np.float32)
    int_art = calibrate(art, obs)
    trace = estimate_cycles(int_art, obs, tmp_path / "trace", integer=True)
    m4 = run_on_m4(int_art, obs[:1], tmp_path / "run", integer=True, repeats=4)
    assert abs(trace.instructions - m4.instructions) <= 2, (trace, m4.instructions)
    assert trace.instructions < trace.cycles < 3 * trace.instructions
    assert trace.taken > 0

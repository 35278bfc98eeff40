"""Size and batch-1 latency of a Hopper-sized SAC actor (11 -> 256 -> 256 -> 3), exported.

Used by ``benchmarks/bench_export.py`` and ``notebooks/deployment.ipynb``. The actor is SB3's,
randomly initialised, magnitude-pruned (Erdos-Renyi) with nnc4rl and rounded onto the int8 grid
(post-training quantization: sizes and speed do not depend on training).
"""

from __future__ import annotations

import ctypes
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from nnc4rl.compress.size import index_bytes
from nnc4rl.export.artifact import Artifact, artifact_from_sb3, save_artifact

SPARSITIES = (0.0, 0.9, 0.98, 0.99)


def _prune_and_quantize(module, sparsity: float, bits: int) -> None:
    """Erdos-Renyi magnitude pruning to ``sparsity`` (if > 0), then ``bits``-bit PTQ, in place."""
    import torch

    from nnc4rl.compress.pruning import magnitude_masks, prunable_layers
    from nnc4rl.compress.quant import post_training_quantize

    layers = [m for _, m in prunable_layers(module)]
    if sparsity > 0:
        masks = magnitude_masks([m.weight for m in layers], sparsity, "erdos_renyi")
        with torch.no_grad():
            for m, mask in zip(layers, masks, strict=True):
                m.weight.mul_(mask)
    post_training_quantize(module, bits)


def hopper_sized_sac(sparsity: float, bits: int = 8, seed: int = 0):
    """``(dense fp32 SAC model, compressed SAC model)`` on Hopper-v4, actor net_arch [256, 256]."""
    import copy

    import torch
    from stable_baselines3 import SAC

    torch.manual_seed(seed)
    dense = SAC("MlpPolicy", "Hopper-v4", buffer_size=1, seed=seed, device="cpu",
                policy_kwargs={"net_arch": [256, 256]})  # fmt: skip
    model = copy.deepcopy(dense)
    _prune_and_quantize(model.actor, sparsity, bits)
    return dense, model


def atari_dqn(sparsity: float, arch: str = "cnn", bits: int = 8, seed: int = 0):
    """``(dense fp32 DQN, compressed DQN)`` on Pong (4 x 84 x 84 uint8 frames), randomly
    initialised, magnitude-pruned (Erdos-Renyi) and rounded onto the ``bits``-bit grid.

    :param arch: ``cnn`` (Nature CNN), ``impala`` or ``impala-authors`` (the paper's ResNet).
    """
    import copy

    import torch
    from stable_baselines3 import DQN

    from nnc4rl.compress.networks import ARCH_PRESETS, ImpalaCNN
    from nnc4rl.core.envs import make_envs

    torch.manual_seed(seed)
    train_env, eval_env = make_envs("PongNoFrameskip-v4", seed)
    eval_env.close()
    kwargs = {}
    if arch in ARCH_PRESETS:
        kwargs = {"features_extractor_class": ImpalaCNN,
                  "features_extractor_kwargs": ARCH_PRESETS[arch]}  # fmt: skip
    dense = DQN("CnnPolicy", train_env, buffer_size=1, seed=seed, device="cpu",
                policy_kwargs=kwargs)  # fmt: skip
    train_env.close()
    dense.env = None  # a closed VecEnv; it does not deep-copy
    model = copy.deepcopy(dense)
    _prune_and_quantize(model.q_net, sparsity, bits)
    return dense, model


def encoding_sizes(art: Artifact, artifact_bytes: int) -> dict[str, int]:
    """Stored bytes of the exported layers under each encoding (values + index + fp32 bias and
    scales), the artifact file, and the floor (the int8 non-zeros alone)."""
    out = {"fp32_dense": 0, "int8_dense": 0, "int8_csr": 0, "int8_bitmask": 0, "cheapest": 0}
    for la in art.layers:
        rows, cols, nnz = la.rows, la.cols, la.nnz
        extra = 4 * la.bias.size + 4 * la.scale.size
        idx = index_bytes(rows, cols, nnz)
        csr = min(idx.get("csr8", math.inf), idx["csr16"]) + nnz + extra
        enc = {"int8_dense": rows * cols + extra, "int8_csr": csr,
               "int8_bitmask": idx["bitmask"] + nnz + extra}  # fmt: skip
        out["fp32_dense"] += 4 * (rows * cols + la.bias.size)
        for k, v in enc.items():
            out[k] += int(v)
        out["cheapest"] += int(min(enc.values()))
    out["artifact"] = artifact_bytes
    out["floor"] = sum(la.nnz for la in art.layers)
    return out


def _median_us(fn, calls: int, warmup: int = 200) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        t = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t)
    return statistics.median(times) / 1e3


def latencies(dense, art: Artifact, workdir: Path, calls: int = 2000) -> dict[str, float]:
    """Median batch-1 latency (microseconds) of the dense fp32 torch actor, the onnxruntime
    model (1 thread) and the compiled C function (called through ctypes)."""
    import torch

    from nnc4rl.export.c_build import compile_shared
    from nnc4rl.export.c_export import save_c
    from nnc4rl.export.onnx_export import OnnxPolicy, save_onnx

    torch.set_num_threads(1)
    obs = np.random.default_rng(0).normal(size=(1, art.obs["shape"][0])).astype(np.float32)
    obs_t = torch.from_numpy(obs)
    actor = dense.actor.eval()

    def run_torch():
        with torch.inference_mode():
            actor(obs_t, deterministic=True)

    save_onnx(art, workdir / "p.onnx")
    sess = OnnxPolicy(art, workdir / "p.onnx").session
    c_path, _ = save_c(art, workdir / "p.c")
    lib = ctypes.CDLL(str(compile_shared(c_path, workdir / "p.so").resolve()))
    f32p = ctypes.POINTER(ctypes.c_float)
    act_fn = lib.nnc4rl_policy_act
    act_fn.argtypes, act_fn.restype = [f32p, f32p], ctypes.c_int
    out = np.empty(art.action_size, np.float32)
    p_obs, p_out = obs[0].ctypes.data_as(f32p), out.ctypes.data_as(f32p)
    return {
        "torch_dense_fp32": _median_us(run_torch, calls),
        "onnxruntime": _median_us(lambda: sess.run(["action"], {"obs": obs}), calls),
        "c": _median_us(lambda: act_fn(p_obs, p_out), calls),
    }


def run_benchmark(sparsities=SPARSITIES, calls: int = 2000) -> list[dict]:
    """One row per sparsity: ``sparsity``, ``sizes`` (bytes) and ``latency_us``."""
    from nnc4rl.export.c_build import footprint

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in sparsities:
            work = Path(tmp) / f"s{s}"
            work.mkdir()
            dense, model = hopper_sized_sac(s)
            art = artifact_from_sb3(model, bits=8)
            n = save_artifact(art, work / "p.npz")
            lat = latencies(dense, art, work, calls)
            rows.append({"sparsity": s, "measured_sparsity": art.sparsity(),
                         "sizes": encoding_sizes(art, n), "latency_us": lat,
                         "c_footprint": footprint(work / "p.c")})  # fmt: skip
    return rows


def sizes_table(rows: list[dict]) -> str:
    """Stored bytes per encoding (and x the int8 non-zero floor), and the C export's flash / RAM:
    deterministic, unlike the latencies."""
    size_keys = ["fp32_dense", "int8_dense", "int8_csr", "int8_bitmask", "cheapest", "artifact",
                 "floor"]  # fmt: skip
    lines = ["stored bytes (x the int8 non-zero floor)",
             "sparsity " + "".join(f"{k:>20}" for k in size_keys)]  # fmt: skip
    for r in rows:
        sz = r["sizes"]
        cells = "".join(f"{sz[k]:>10d} ({sz[k] / sz['floor']:5.1f}x)" for k in size_keys)
        lines.append(f"{r['sparsity']:8.2f} {cells}")
    lines.append(
        "artifact / cheapest encoding: "
        + ", ".join(
            f"{r['sparsity']:.2f}: {r['sizes']['artifact'] / r['sizes']['cheapest']:.3f}x"
            for r in rows
        )
    )
    lines.append("C export (-Os): " + ", ".join(
        f"{r['sparsity']:.2f}: {r['c_footprint']['flash']} B flash / {r['c_footprint']['ram']} B RAM"
        for r in rows))  # fmt: skip
    return "\n".join(lines)


def latency_table(rows: list[dict]) -> str:
    """Batch-1 median latencies (us) and speed-ups vs torch: they measure this machine."""
    lines = ["batch-1 latency, median (us); speed-up = torch dense fp32 / x",
             f"sparsity {'torch':>10} {'onnxrt':>10} {'C':>10} {'ort x':>8} {'C x':>8}"]  # fmt: skip
    for r in rows:
        lat = r["latency_us"]
        t = lat["torch_dense_fp32"]
        lines.append(
            f"{r['sparsity']:8.2f} {t:10.2f} {lat['onnxruntime']:10.2f} {lat['c']:10.2f} "
            f"{t / lat['onnxruntime']:8.1f} {t / lat['c']:8.1f}"
        )
    return "\n".join(lines)


def format_table(rows: list[dict]) -> str:
    """The benchmark as text: :func:`sizes_table`, then :func:`latency_table`."""
    return sizes_table(rows) + "\n\n" + latency_table(rows)


def cnn_latencies(sparsity: float = 0.95, calls: int = 100, arch: str = "cnn") -> dict:
    """Batch-1 latency (median us) of a pruned int8 Atari Q-network: torch (dense fp32, 1
    thread) against the C export with each layer in its smallest encoding (sparse-aware conv
    loops) and the same network's C with every layer dense, for both arithmetic paths.

    :returns: ``latency_us`` per backend, ``macs`` (dense) and ``nnz_macs`` (non-zero weights
        times output positions), and the measured sparsity.
    """
    import torch

    from nnc4rl.core.envs import make_envs
    from nnc4rl.export.c_build import CPolicy, compile_shared
    from nnc4rl.export.c_export import save_c
    from nnc4rl.export.integer import calibrate
    from nnc4rl.export.verify import record_observations

    torch.set_num_threads(1)
    dense, model = atari_dqn(sparsity, arch)
    art = artifact_from_sb3(model, bits=8)
    _, env = make_envs("PongNoFrameskip-v4")
    frames = record_observations(model, env, n=8, every=5, random_prob=0.5)
    env.close()
    int_art = calibrate(art, frames)
    obs = frames[:1]
    x = torch.from_numpy(obs).permute(0, 3, 1, 2).float() / 255.0
    q_net = dense.q_net.eval()

    def run_torch():
        with torch.inference_mode():
            q_net(x)

    lat = {"torch_dense_fp32": _median_us(run_torch, calls, warmup=10)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, a, integer, enc in (("c_fp32", art, False, None),
                                      ("c_fp32_dense", art, False, "dense"),
                                      ("c_int8", int_art, True, None),
                                      ("c_int8_dense", int_art, True, "dense")):  # fmt: skip
            c_path, _ = save_c(a, Path(tmp) / f"{name}.c", integer=integer, encoding=enc)
            policy = CPolicy(a, compile_shared(c_path, Path(tmp) / f"{name}.so"), integer=integer)
            lat[name] = _median_us(lambda p=policy: p.outputs(obs), calls, warmup=10)
    shapes = art.activation_shapes()
    macs = nnz_macs = 0
    for op, s_out in zip(art.ops, shapes[1:], strict=True):
        if op["op"] in ("linear", "conv2d"):
            layer, positions = art.layers[op["layer"]], int(np.prod(s_out[1:])) or 1
            macs += layer.codes.size * positions
            nnz_macs += layer.nnz * positions
    return {"sparsity": art.sparsity(), "latency_us": lat, "macs": macs, "nnz_macs": nnz_macs}


def format_cnn(r: dict) -> str:
    lat, t = r["latency_us"], r["latency_us"]["torch_dense_fp32"]
    lines = [f"Nature CNN (Pong), sparsity {r['sparsity']:.3f}, batch 1, 1 thread: "
             f"{r['nnz_macs'] / 1e6:.2f} M of {r['macs'] / 1e6:.2f} M MACs left "
             f"({r['macs'] / r['nnz_macs']:.1f}x fewer)"]  # fmt: skip
    for k, v in lat.items():
        lines.append(f"  {k:18s} {v:10.1f} us   torch / this {t / v:5.2f}x")
    lines.append(f"  sparse vs dense C: fp32 {lat['c_fp32_dense'] / lat['c_fp32']:.2f}x, "
                 f"int8 {lat['c_int8_dense'] / lat['c_int8']:.2f}x faster")  # fmt: skip
    return "\n".join(lines)

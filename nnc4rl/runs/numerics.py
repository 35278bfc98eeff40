"""A fingerprint of this machine's floating-point results, recorded with every run.

A HalfCheetah episode is chaotic: a difference in the last bit of one matrix product grows into
a visibly different trajectory within a few hundred steps. Another CPU lets MKL (torch's BLAS)
and oneDNN pick other kernels, with another summation order, so a saved policy replayed there
scores episode returns about 1 % away from the ones its run reported, while a replay on a
machine that computes the same bits reproduces them exactly. The fingerprint tells the two
cases apart: it hashes the outputs of the operations an evaluation runs (MLP and convolution
forwards at the shapes the networks use, and, for MuJoCo tasks, a fixed-action rollout of the
simulator). Equal fingerprints mean a replay must be bit-exact.
"""

from __future__ import annotations

import hashlib
import platform
from typing import Any

import numpy as np

_ROLLOUT_STEPS = 300  # long enough for a last-bit difference in MuJoCo to reach the observation


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _torch_digests() -> dict[str, str]:
    import torch

    rng = np.random.default_rng(0)

    def tensor(*shape: int, fan_in: int = 1) -> torch.Tensor:
        # scaled like a trained layer's weights: unscaled products would saturate tanh to +-1
        return torch.from_numpy((rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32))

    linear = torch.nn.functional.linear
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # runs train and evaluate with one thread per process
    try:
        with torch.no_grad():
            # an SAC-sized MLP at the batch of an evaluation step (1) and of an update (256)
            layers = [
                (tensor(o, i, fan_in=i), tensor(o)) for i, o in ((17, 256), (256, 256), (256, 12))
            ]
            outs = []
            for batch in (1, 256):
                h = tensor(batch, 17)
                for k, (w, b) in enumerate(layers):
                    h = linear(h, w, b)
                    outs.append(h.numpy())
                    h = torch.relu(h) if k < len(layers) - 1 else torch.tanh(h)
                outs.append(h.numpy())
            # the Nature-CNN first layer on one Atari frame stack
            conv = torch.nn.functional.conv2d(
                tensor(1, 4, 84, 84), tensor(32, 4, 8, 8, fan_in=256), tensor(32), stride=4
            )
    finally:
        torch.set_num_threads(threads)
    return {"torch_mlp": _digest(*outs), "torch_conv": _digest(conv.numpy())}


def _mujoco_digest(env_id: str) -> str:
    import gymnasium as gym

    env = gym.make(env_id)
    try:
        obs, _ = env.reset(seed=0)
        observed = [obs]
        if isinstance(env.action_space, gym.spaces.Discrete):  # e.g. CartPole: cycle the actions
            for t in range(_ROLLOUT_STEPS):
                obs, _, terminated, truncated, _ = env.step(t % int(env.action_space.n))
                observed.append(obs)
                if terminated or truncated:
                    obs, _ = env.reset(seed=t)
            return _digest(np.asarray(observed))
        low, high = env.action_space.low, env.action_space.high
        for t in range(_ROLLOUT_STEPS):
            phase = np.arange(low.size) + 0.05 * t
            obs, *_ = env.step((low + (high - low) * (0.5 + 0.5 * np.sin(phase))).astype(low.dtype))
            observed.append(obs)
    finally:
        env.close()
    return _digest(np.asarray(observed))


def float_fingerprint(env_id: str) -> dict[str, str]:
    """Hashes of the floating-point results an evaluation on ``env_id`` depends on.

    :param env_id: the task; MuJoCo tasks add a rollout of their simulator (Atari emulation is
        integer arithmetic and needs none).
    :returns: ``{"torch_mlp", "torch_conv"[, "mujoco"]}`` -> 16 hex digits each.
    """
    from nnc4rl.core.envs import is_atari

    digests = _torch_digests()
    if not is_atari(env_id):
        digests["mujoco"] = _mujoco_digest(env_id)
    return digests


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def platform_record(env_id: str) -> dict[str, Any]:
    """What a run's ``summary.json`` keeps under ``platform``: the CPU, the versions of the
    numerical libraries and :func:`float_fingerprint`.
    """
    import gymnasium

    versions = {"numpy": np.__version__, "gymnasium": gymnasium.__version__}
    try:
        import mujoco

        versions["mujoco"] = mujoco.__version__
    except ImportError:
        pass
    return {
        "cpu": _cpu_name(),
        "machine": platform.machine(),
        "versions": versions,
        "fingerprint": float_fingerprint(env_id),
    }

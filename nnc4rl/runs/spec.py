"""What defines one run: :class:`RunSpec`, checked and completed by :func:`resolve`.

A spec names the algorithm, env, network, compression and seed; :func:`resolve` validates it
against the env (action and observation spaces) and resolves its hyperparameters
(``nnc4rl/hyperparams/<algo>.yml`` plus the spec's overrides). Only resolved specs are trained,
keyed and stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from nnc4rl.compress.plan import TrainingPlan
from nnc4rl.compress.pruning import DISTRIBUTIONS
from nnc4rl.core.config import (
    MAX_SEED,
    MAX_THREADS,
    ConfigError,
    apply_overrides,
    check_bits,
    check_int,
    check_sparsity,
    default_hyperparams,
)
from nnc4rl.core.envs import is_atari

ALGOS = ("sac", "dqn")
ARCHS = ("mlp", "cnn", "impala", "impala-authors")
IMAGE_ARCHS = ("cnn", "impala", "impala-authors")


@dataclass
class RunSpec:
    """Everything that defines one run.

    :param algo: ``sac`` or ``dqn``.
    :param env: a gymnasium id (MuJoCo ``Hopper-v4``, Atari ``PongNoFrameskip-v4``, ...).
    :param steps: the paper's ``T`` in env steps; a quantized run trains ``1.2 T``.
    :param arch: ``mlp`` (SAC; DQN on vector observations), ``cnn`` (Nature CNN), ``impala``
        (original IMPALA ResNet) or ``impala-authors`` (the paper's ResNet); ``None`` picks
        ``mlp`` for vector observations and ``cnn`` for Atari.
    :param sparsity: final sparsity in [0, 1).
    :param distribution: ``global``, ``uniform`` or ``erdos_renyi``.
    :param quantize: add the ``bits``-bit QAT phase.
    :param extra_finetune: without ``quantize``: fine-tune to ``1.2 T`` (equal-length control).
    :param overrides: ``{dotted.key: value}`` hyperparameter overrides (``--set``).
    """

    algo: str
    env: str
    steps: int
    seed: int = 0
    arch: str | None = None
    sparsity: float = 0.0
    distribution: str = "erdos_renyi"
    quantize: bool = False
    bits: int = 8
    extra_finetune: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    n_envs: int = 1
    threads: int = 1
    device: str = "cpu"


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is invalid: choose one of {', '.join(allowed)}")


DEVICE = re.compile(r"^(cpu|auto|mps|cuda(:\d+)?)$")


def check_device(device: Any) -> str:
    """``device`` if this machine has it: ``cpu``, ``auto``, ``cuda``, ``cuda:N`` or ``mps``.

    :raises ConfigError: one line naming the device and what is allowed or available.
    """
    import torch

    if not isinstance(device, str) or not DEVICE.match(device):
        raise ConfigError(f"device={device!r} is invalid: use cpu, cuda, cuda:N, mps or auto")
    if device.startswith("cuda"):
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= n:
            have = f"cuda:0..cuda:{n - 1}" if n else "no CUDA device"
            raise ConfigError(f"device={device!r} is not available: this machine has {have}")
    if device == "mps" and not (getattr(torch.backends, "mps", None)
                                and torch.backends.mps.is_available()):  # fmt: skip
        raise ConfigError("device='mps' is not available on this machine: use cpu or auto")
    return device


def resolve(spec: RunSpec) -> tuple[RunSpec, dict[str, dict[str, Any]]]:
    """Check ``spec`` and fill in defaults; returns it with ``arch`` set and its hyperparameters.

    Raises :class:`ConfigError` with one line naming the bad value and what is allowed.
    """
    import gymnasium as gym
    from stable_baselines3 import DQN, SAC

    _one_of("algo", spec.algo, ALGOS)
    if spec.arch is not None:
        _one_of("arch", spec.arch, ARCHS)
    _one_of("distribution", spec.distribution, DISTRIBUTIONS)
    check_sparsity(spec.sparsity)
    check_bits(spec.bits)
    check_int(spec.steps, "steps", minimum=5)
    check_int(spec.seed, "seed", minimum=0, maximum=MAX_SEED)
    check_int(spec.n_envs, "n_envs", maximum=MAX_THREADS)
    check_int(spec.threads, "threads", maximum=MAX_THREADS)
    if spec.quantize and spec.extra_finetune:
        raise ConfigError("extra_finetune=True needs quantize=False: it is the control without QAT")
    check_device(spec.device)

    atari = is_atari(spec.env)
    if atari:
        obs_is_vector, discrete = False, True
    else:
        probe = gym.make(spec.env)
        obs_is_vector = isinstance(probe.observation_space, gym.spaces.Box) and (
            len(probe.observation_space.shape) == 1
        )
        discrete = isinstance(probe.action_space, gym.spaces.Discrete)
        continuous = isinstance(probe.action_space, gym.spaces.Box)
        probe.close()
        if spec.algo == "sac" and not continuous:
            raise ConfigError(
                f"env={spec.env!r} has discrete actions: sac needs a Box action space"
            )
    if spec.algo == "sac" and atari:
        raise ConfigError(f"env={spec.env!r} is Atari (discrete actions): use --algo dqn")
    if spec.algo == "dqn" and not discrete:
        raise ConfigError(f"env={spec.env!r} has continuous actions: dqn needs Discrete actions")
    if not atari and not obs_is_vector:
        raise ConfigError(f"env={spec.env!r} has non-vector observations: not supported")
    allowed = IMAGE_ARCHS if atari else ("mlp",)
    arch = spec.arch or allowed[0]
    if arch not in allowed:
        kind = "Atari (image) env" if atari else "vector-observation env"
        raise ConfigError(
            f"arch={arch!r} does not fit {kind} {spec.env!r}: choose one of {', '.join(allowed)}"
        )
    hyper = apply_overrides(
        default_hyperparams(spec.algo, arch), spec.overrides, SAC if spec.algo == "sac" else DQN
    )
    return replace(spec, arch=arch), hyper


def make_plan(spec: RunSpec, hyper: dict[str, dict[str, Any]]) -> TrainingPlan:
    """The training plan of a resolved ``spec``."""
    return TrainingPlan(
        T=spec.steps,
        final_sparsity=float(spec.sparsity),
        n_events=hyper["compression"]["n_events"],
        quantize=spec.quantize,
        bits=spec.bits,
        extra_finetune=spec.extra_finetune,
    )

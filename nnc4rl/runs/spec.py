"""What defines one run: :class:`RunSpec`, checked and completed by :func:`resolve`.

A spec names the algorithm, env, network, compression and seed; :func:`resolve` validates it
against the env (action and observation spaces) and resolves its hyperparameters
(``nnc4rl/hyperparams/<algo>.yml`` plus the spec's overrides). Only resolved specs are trained,
keyed and stored.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from nnc4rl.compress.algos import NAMES, algo_by_name
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

ALGOS = NAMES  # sac, tqc, td3, ddpg, dqn, ppo, a2c (nnc4rl.compress.algos)
ARCHS = ("mlp", "cnn", "impala", "impala-authors")
IMAGE_ARCHS = ("cnn", "impala", "impala-authors")


@dataclass
class RunSpec:
    """Everything that defines one run.

    :param algo: one of :data:`ALGOS` (``sac``, ``tqc``, ``td3``, ``ddpg``, ``dqn``, ``ppo``,
        ``a2c``).
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
    :param init_model: a trained SB3 ``model.zip`` of ``algo`` to compress (``nnc4rl compress``)
        instead of a fresh model: its hyperparameters are those it was saved with, changed only
        by ``overrides`` (its network, ``policy_kwargs``, cannot change).
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
    init_model: str | None = None


def spec_fields(spec: RunSpec) -> dict[str, Any]:
    """``spec`` as a dict for keys and ``run.json``; ``init_model`` only when set, so a run or
    checkpoint of a fresh model has the same key as before the field existed."""
    fields = asdict(spec)
    if fields["init_model"] is None:
        del fields["init_model"]
    return fields


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

    _one_of("algo", spec.algo, ALGOS)
    info = algo_by_name(spec.algo)
    try:
        algo_class = info.load_class()
    except ImportError as err:
        raise ConfigError(f"algo={spec.algo!r}: {err}") from None
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
        if "box" not in info.action_spaces and continuous:
            raise ConfigError(
                f"env={spec.env!r} has continuous actions: {spec.algo} needs Discrete actions"
            )
    if "discrete" not in info.action_spaces and discrete:
        kind = "is Atari (discrete actions)" if atari else "has discrete actions"
        raise ConfigError(
            f"env={spec.env!r} {kind}: {spec.algo} needs a Box action space; use dqn, ppo or a2c"
        )
    if not atari and not (discrete or continuous):
        raise ConfigError(f"env={spec.env!r}: only Box or Discrete action spaces are supported")
    if not atari and not obs_is_vector:
        raise ConfigError(f"env={spec.env!r} has non-vector observations: not supported")
    allowed = IMAGE_ARCHS if atari else ("mlp",)
    arch = spec.arch or allowed[0]
    if arch not in allowed:
        kind = "Atari (image) env" if atari else "vector-observation env"
        raise ConfigError(
            f"arch={arch!r} does not fit {kind} {spec.env!r}: choose one of {', '.join(allowed)}"
        )
    defaults = default_hyperparams(spec.algo, arch)
    if spec.init_model is not None:
        _check_init_model(spec)
        # a trained model keeps the hyperparameters it was saved with: only overrides change them
        defaults["sb3"] = {}
    hyper = apply_overrides(defaults, spec.overrides, algo_class)
    activation = (hyper["sb3"].get("policy_kwargs") or {}).get("activation_fn")
    if activation not in (None, "relu", "tanh"):
        raise ConfigError(f"activation_fn={activation!r} is invalid: choose one of relu, tanh")
    return replace(spec, arch=arch), hyper


def check_gradient_steps(spec: RunSpec, hyper: dict[str, dict[str, Any]]) -> None:
    """Refuse a resolved run that would never take a gradient step (``learning_starts`` at or
    past its last env step): it would finish in seconds with a normal-looking summary.

    :raises ConfigError: one line saying what to change.
    """
    starts, total = hyper["sb3"].get("learning_starts"), make_plan(spec, hyper).total_steps
    if isinstance(starts, int) and starts >= total:
        raise ConfigError(
            f"learning_starts={starts} is not below the run's {total:,} env steps: no gradient "
            "step would run; lower it (--set learning_starts=N) or train longer (--steps)"
        )


def _check_init_model(spec: RunSpec) -> None:
    """The trained model to compress must exist, be of ``spec.algo`` and keep its network."""
    from pathlib import Path

    from nnc4rl.export.trace import saved_algo

    if not Path(spec.init_model).is_file():
        raise ConfigError(f"model={spec.init_model!r} does not exist: give an SB3 model.zip")
    saved = saved_algo(spec.init_model)
    if saved != spec.algo:
        raise ConfigError(
            f"model={spec.init_model!r} was saved by {saved}, not {spec.algo}: use --algo {saved}"
        )
    fixed = sorted(k for k in spec.overrides if k.split(".")[0] == "policy_kwargs")
    if fixed:
        raise ConfigError(
            f"hyperparameter {fixed[0]!r} cannot change for a trained model: its network is fixed"
        )


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

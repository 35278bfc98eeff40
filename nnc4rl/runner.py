"""One training run: ``RunSpec`` -> train + evaluate -> a run folder.

A run folder holds ``model.zip`` (plain SB3, exactly the last evaluated network),
``summary.json`` (what was run and what was measured from the saved tensors) and
``evaluations.csv`` (periodic deterministic evaluations for learning curves). It is written into
a hidden temporary folder beside the target and renamed when complete, so a folder with the
target's name is always a finished run.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from nnc4rl.config import ConfigError, apply_overrides, default_hyperparams
from nnc4rl.plan import TrainingPlan
from nnc4rl.pruning import DISTRIBUTIONS

ALGOS = ("sac", "dqn")
ARCHS = ("mlp", "cnn", "impala", "impala-authors")
IMAGE_ARCHS = ("cnn", "impala", "impala-authors")
EVAL_FIELDS = ("step", "phase", "mean", "std", "episodes")


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
    overrides: dict[str, Any] = field(default_factory=dict)
    n_envs: int = 1
    threads: int = 1
    device: str = "cpu"


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is invalid: choose one of {', '.join(allowed)}")


def is_atari(env_id: str) -> bool:
    """Whether ``env_id`` is a registered ALE (Atari) id; raises ``ConfigError`` if unknown."""
    import ale_py
    import gymnasium as gym

    gym.register_envs(ale_py)
    try:
        spec = gym.spec(env_id)
    except gym.error.Error:
        raise ConfigError(f"env={env_id!r} is not a registered gymnasium environment") from None
    return "ale_py" in str(spec.entry_point)


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
    if not isinstance(spec.sparsity, (int, float)) or not 0.0 <= spec.sparsity < 1.0:
        raise ConfigError(f"sparsity={spec.sparsity!r} is invalid: it must be in [0, 1)")
    if not isinstance(spec.bits, int) or not 2 <= spec.bits <= 8:
        raise ConfigError(f"bits={spec.bits!r} is invalid: an integer in 2..8 is required")
    for name in ("steps", "n_envs", "threads"):
        value = getattr(spec, name)
        if not isinstance(value, int) or value < (5 if name == "steps" else 1):
            raise ConfigError(f"{name}={value!r} is invalid: a positive integer is required")
    if spec.device != "cpu" and not spec.device.startswith(("cuda", "mps", "auto")):
        raise ConfigError(f"device={spec.device!r} is invalid: use cpu, cuda[:N], mps or auto")

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


def make_envs(spec: RunSpec, eval_seed_offset: int = 10_000):
    """Training and evaluation VecEnvs. Atari: the standard DQN preprocessing and 4-frame stack;
    its evaluation env plays whole games (no life-loss terminal) with unclipped rewards."""
    import ale_py
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_atari_env, make_vec_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    if is_atari(spec.env):
        train = VecFrameStack(make_atari_env(spec.env, n_envs=spec.n_envs, seed=spec.seed), 4)
        evaluation = VecFrameStack(
            make_atari_env(
                spec.env,
                n_envs=1,
                seed=spec.seed + eval_seed_offset,
                wrapper_kwargs={"terminal_on_life_loss": False, "clip_reward": False},
            ),
            4,
        )
    else:
        train = make_vec_env(spec.env, n_envs=spec.n_envs, seed=spec.seed)
        evaluation = make_vec_env(spec.env, n_envs=1, seed=spec.seed + eval_seed_offset)
    return train, evaluation


def build_model(spec: RunSpec, hyper: dict[str, dict[str, Any]], env, plan: TrainingPlan):
    """The SB3 model of ``spec`` with its hyperparameters (replay buffer capped at the run)."""
    from stable_baselines3 import DQN, SAC

    from nnc4rl.networks import ARCH_PRESETS, ImpalaCNN

    kwargs = dict(hyper["sb3"])
    kwargs["buffer_size"] = max(1, min(int(kwargs.get("buffer_size", 1_000_000)), plan.total_steps))
    if spec.arch in ARCH_PRESETS:
        policy_kwargs = dict(kwargs.get("policy_kwargs") or {})
        policy_kwargs["features_extractor_class"] = ImpalaCNN
        policy_kwargs["features_extractor_kwargs"] = ARCH_PRESETS[spec.arch]
        kwargs["policy_kwargs"] = policy_kwargs
    policy = "CnnPolicy" if spec.arch in IMAGE_ARCHS else "MlpPolicy"
    algo_class = SAC if spec.algo == "sac" else DQN
    try:
        return algo_class(policy, env, seed=spec.seed, device=spec.device, verbose=0, **kwargs)
    except (TypeError, ValueError, AssertionError) as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"hyperparameters rejected by {algo_class.__name__}: {msg}") from None


class Evaluator:
    """Deterministic evaluation on a separate env; keeps one row per evaluated step.

    :param eval_env: a VecEnv with one env (Monitor-wrapped, so Atari returns are whole games).
    :param episodes: episodes per evaluation.
    :param plan: labels each row with the phase that produced the network.
    """

    def __init__(self, eval_env, episodes: int, plan: TrainingPlan):
        self.env, self.episodes, self.plan = eval_env, episodes, plan
        self.rows: list[dict[str, Any]] = []

    def evaluate(self, model, step: int) -> dict[str, Any]:
        from stable_baselines3.common.evaluation import evaluate_policy

        if self.rows and self.rows[-1]["step"] == step:
            return self.rows[-1]  # the same network, already evaluated
        returns, _ = evaluate_policy(
            model, self.env, self.episodes, deterministic=True, return_episode_rewards=True
        )
        row = {
            "step": step,
            "phase": self.plan.phase_at(max(step - 1, 0)).value,
            "mean": float(np.mean(returns)),
            "std": float(np.std(returns)),
            "episodes": len(returns),
        }
        self.rows.append(row)
        return row


def _periodic_eval_callback(evaluator: Evaluator, every: int, plan: TrainingPlan):
    from stable_baselines3.common.callbacks import BaseCallback

    class PeriodicEval(BaseCallback):
        """Evaluate each time ``num_timesteps`` crosses a multiple of ``every`` (before the end)."""

        def _on_step(self) -> bool:
            step, n = self.num_timesteps, self.model.n_envs
            if step // every > (step - n) // every and step < plan.total_steps:
                evaluator.evaluate(self.model, step)
            return True

    return PeriodicEval()


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def train(spec: RunSpec, out: str | Path, progress: bool | None = None) -> dict[str, Any]:
    """Train, evaluate and save one run into the folder ``out`` (which must not exist yet).

    :param progress: show a progress bar; ``None`` shows it when stderr is a terminal.
    :returns: the summary also written to ``out/summary.json``.
    :raises ConfigError: on bad input, before anything is written.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"out={str(out)!r} already exists: choose a new folder")
    spec, hyper = resolve(spec)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        summary = _train_into(spec, hyper, tmp, progress)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def _train_into(spec: RunSpec, hyper: dict, folder: Path, progress: bool | None) -> dict:
    import stable_baselines3
    import torch
    from stable_baselines3.common.callbacks import CallbackList, ProgressBarCallback

    import nnc4rl
    from nnc4rl.measure import measure_model_zip, measure_state_dict
    from nnc4rl.sb3 import CompressionCallback

    torch.set_num_threads(spec.threads)
    plan = TrainingPlan(
        total_timesteps=spec.steps,
        final_sparsity=float(spec.sparsity),
        n_events=hyper["compression"]["n_events"],
        quantize=spec.quantize,
        bits=spec.bits,
    )
    env, eval_env = make_envs(spec)
    try:
        model = build_model(spec, hyper, env, plan)
        evaluator = Evaluator(eval_env, hyper["evaluation"]["eval_episodes"], plan)
        boundary: dict[str, dict] = {}  # evaluation point -> its evaluation row
        measured_at: dict[str, dict] = {}  # evaluation point -> the evaluated network's tensors

        def at_finetune_end(m) -> None:
            boundary["finetune_end"] = evaluator.evaluate(m, m.num_timesteps)
            measured_at["finetune_end"] = measure_state_dict(m.policy.state_dict(), None)

        compression = CompressionCallback(plan, spec.distribution, at_finetune_end)
        callbacks = [
            _periodic_eval_callback(evaluator, hyper["evaluation"]["eval_freq"], plan),
            compression,
        ]
        if progress if progress is not None else sys.stderr.isatty():
            callbacks.append(ProgressBarCallback())
        start = time.perf_counter()
        model.learn(plan.total_steps, callback=CallbackList(callbacks))
        wall = time.perf_counter() - start
        compression.finalize()
        final = evaluator.evaluate(model, model.num_timesteps)
        final_point = "qat_end" if spec.quantize else "finetune_end"
        boundary[final_point] = final
        model.save(folder / "model.zip")
    finally:
        env.close()
        eval_env.close()

    measured = measure_model_zip(folder / "model.zip", spec.bits if spec.quantize else None)
    measured_at[final_point] = measured
    summary = {
        "algo": spec.algo,
        "env": spec.env,
        "arch": spec.arch,
        "seed": spec.seed,
        "target_sparsity": float(spec.sparsity),
        "distribution": spec.distribution,
        "quantized": spec.quantize,
        "bits": spec.bits if spec.quantize else 32,
        "T": spec.steps,
        "total_timesteps": int(model.num_timesteps),
        "n_envs": spec.n_envs,
        "threads": spec.threads,
        "device": spec.device,
        "wall_time_s": wall,
        "measured_sparsity": measured["measured_sparsity"],
        "layer_sparsity": measured["layer_sparsity"],
        "size": measured["size"],
        "size_layers": measured["size_layers"],
        # each evaluation point with the size of the network evaluated there (fp32 at T)
        "eval": {
            k: {f: v[f] for f in ("step", "mean", "std", "episodes")}
            | {f: measured_at[k][f] for f in ("measured_sparsity", "params", "nnz", "size")}
            for k, v in boundary.items()
        },
        "plan": plan.to_dict(),
        "hyperparameters": hyper,
        "overrides": spec.overrides,
        "versions": {
            "nnc4rl": nnc4rl.__version__,
            "stable_baselines3": stable_baselines3.__version__,
            "torch": torch.__version__,
        },
    }
    if "quantization" in measured:
        summary["quantization"] = measured["quantization"]
    _write_json(folder / "summary.json", summary)
    with open(folder / "evaluations.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=EVAL_FIELDS)
        writer.writeheader()
        writer.writerows(evaluator.rows)
    return summary

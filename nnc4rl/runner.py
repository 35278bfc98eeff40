"""One training run: ``RunSpec`` -> train + evaluate -> a run folder.

A run folder holds ``model.zip`` (plain SB3, exactly the last evaluated network),
``summary.json`` (what was run and what was measured from the saved tensors, schema in
:mod:`nnc4rl.schema`) and ``evaluations.csv`` (periodic deterministic evaluations for learning
curves). It is written into a hidden temporary folder beside the target and renamed when
complete, so a folder with the target's name is always a finished run.

*Paired evaluation.* Every evaluation plays the same episodes: episode ``i`` starts from a reset
with seed :func:`evaluation_seeds` ``(seed, n)[i]``, so a network's score does not depend on what
was evaluated before, and all points of a run, and runs of the same seed, compare paired.

*Training in two stages.* A run that trains past ``T`` (QAT, or the equal-length control) calls
``learn(T)``, evaluates the fp32 network at ``T``, then continues to ``1.2 T``: whatever SB3
derives from ``learn``'s total (DQN's exploration schedule) is measured on ``T``, so up to ``T``
a quantized run is bit for bit the unquantized run of the same seed.

*Checkpoints.* With a checkpoint folder the run saves :mod:`nnc4rl.checkpoint` state every
``checkpoint_every`` env steps (default: every ~5 minutes of wall time); ``resume=True``
continues from it and gives exactly the numbers of an uninterrupted run (only ``wall_time_s``
differs).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from nnc4rl.atomic import atomic_dir, remove_dead_partials
from nnc4rl.config import (
    ConfigError,
    apply_overrides,
    check_bits,
    check_int,
    check_sparsity,
    default_hyperparams,
)
from nnc4rl.plan import TrainingPlan, steps_to_train
from nnc4rl.pruning import DISTRIBUTIONS
from nnc4rl.schema import EVAL_COLUMNS, SCHEMA_VERSION, validate_summary

ALGOS = ("sac", "dqn")
ARCHS = ("mlp", "cnn", "impala", "impala-authors")
IMAGE_ARCHS = ("cnn", "impala", "impala-authors")
EVAL_SEED_OFFSET = 10_000
# Without --checkpoint-every, a checkpoint every this many seconds of training (~5 min of work).
CHECKPOINT_SECONDS = 300.0


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
    check_sparsity(spec.sparsity)
    check_bits(spec.bits)
    check_int(spec.steps, "steps", minimum=5)
    check_int(spec.n_envs, "n_envs")
    check_int(spec.threads, "threads")
    if spec.quantize and spec.extra_finetune:
        raise ConfigError("extra_finetune=True needs quantize=False: it is the control without QAT")
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


def evaluation_seeds(seed: int, episodes: int) -> list[int]:
    """Reset seed of each evaluation episode of a run of ``seed``: the same at every evaluation
    and for every run of that seed, so all evaluations are paired comparisons."""
    return [seed + EVAL_SEED_OFFSET + i for i in range(episodes)]


def make_envs(spec: RunSpec):
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
                seed=spec.seed + EVAL_SEED_OFFSET,
                wrapper_kwargs={"terminal_on_life_loss": False, "clip_reward": False},
            ),
            4,
        )
    else:
        train = make_vec_env(spec.env, n_envs=spec.n_envs, seed=spec.seed)
        evaluation = make_vec_env(spec.env, n_envs=1, seed=spec.seed + EVAL_SEED_OFFSET)
    return train, evaluation


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


def build_model(spec: RunSpec, hyper: dict[str, dict[str, Any]], env, plan: TrainingPlan):
    """The SB3 model of ``spec`` with its hyperparameters (replay buffer capped at the run)."""
    from stable_baselines3 import DQN, SAC

    from nnc4rl.networks import ARCH_PRESETS, ImpalaCNN

    kwargs = copy.deepcopy(hyper["sb3"])  # SB3 writes into policy_kwargs (e.g. use_sde)
    # Capped at 1.2 T for every run of this T, quantized or not: a buffer of another size would
    # make the unquantized run differ from a quantized one before T (it wraps around earlier).
    cap = steps_to_train(plan.T, extends=True)
    kwargs["buffer_size"] = max(1, min(int(kwargs.get("buffer_size", 1_000_000)), cap))
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
    """Paired deterministic evaluation on a separate env: every call plays the same episodes.

    :param eval_env: a VecEnv with one env (Monitor-wrapped, so Atari returns are whole games).
    :param seeds: the reset seed of each episode (:func:`evaluation_seeds`).
    """

    def __init__(self, eval_env, seeds: list[int]):
        self.env, self.seeds = eval_env, list(seeds)
        self.rows: list[dict[str, Any]] = []

    def returns(self, model) -> list[float]:
        """Undiscounted return of each episode, episode ``i`` reset with ``seeds[i]``."""
        from stable_baselines3.common.evaluation import evaluate_policy

        out = []
        for seed in self.seeds:
            self.env.seed(seed)  # used by the reset evaluate_policy starts with
            r, _ = evaluate_policy(
                model, self.env, 1, deterministic=True, return_episode_rewards=True, warn=False
            )
            out.append(float(r[0]))
        return out

    def evaluate(self, model, step: int, phase: str) -> dict[str, Any]:
        """Evaluate, keep a learning-curve row, and return it with the per-episode returns.

        :param phase: the phase that produced the evaluated network (its label in the curve).
        """
        returns = self.returns(model)
        row = self.row(step, phase, returns)
        self.rows.append(row)
        return row | {"returns": returns}

    @staticmethod
    def row(step: int, phase: str, returns: list[float]) -> dict[str, Any]:
        """The learning-curve row (:data:`nnc4rl.schema.EVAL_COLUMNS`) of one evaluation."""
        return {"step": step, "phase": phase, "mean": float(np.mean(returns)),
                "std": float(np.std(returns)), "episodes": len(returns)}  # fmt: skip


def evaluate_returns(model, spec: RunSpec, episodes: int) -> list[float]:
    """Re-evaluate ``model`` on the paired evaluation episodes of a run of ``spec`` (e.g. a saved
    ``model.zip`` loaded again): gives that run's reported per-episode returns."""
    spec, _ = resolve(spec)
    env, eval_env = make_envs(replace(spec, n_envs=1))
    env.close()
    try:
        return Evaluator(eval_env, evaluation_seeds(spec.seed, episodes)).returns(model)
    finally:
        eval_env.close()


def _callbacks(run: _Run):
    """SB3 callbacks of a run: the periodic evaluation and the checkpoint writer."""
    from stable_baselines3.common.callbacks import BaseCallback

    class PeriodicEval(BaseCallback):
        """Evaluate each time ``num_timesteps`` crosses a multiple of ``eval_freq`` inside a
        ``learn`` call; the end of each call (T, 1.2 T) is evaluated by the runner. It runs after
        the compression callback, so an event step's evaluation sees that step's pruning."""

        def _on_step(self) -> bool:
            step, n, every = self.num_timesteps, self.model.n_envs, run.eval_freq
            if step // every > (step - n) // every and step < self.model._total_timesteps:
                run.evaluator.evaluate(self.model, step, run.compression.network_phase().value)
            return True

    class Checkpointer(BaseCallback):
        """Save a checkpoint between two rollouts once it is due (see :mod:`nnc4rl.checkpoint`)."""

        def _on_rollout_start(self) -> None:
            run.checkpoint_if_due(self.model)

        def _on_step(self) -> bool:
            return True

    return [PeriodicEval(), Checkpointer()]


class _Run:
    """The mutable state of one training run that a checkpoint must carry besides the model."""

    def __init__(self, spec, hyper, plan, eval_env, checkpoint_dir, checkpoint_every):
        from nnc4rl.sb3 import CompressionCallback

        self.spec, self.hyper, self.plan = spec, hyper, plan
        self.key = json.loads(json.dumps({"spec": asdict(spec), "hyperparameters": hyper}))
        self.eval_freq = hyper["evaluation"]["eval_freq"]
        seeds = evaluation_seeds(spec.seed, hyper["evaluation"]["eval_episodes"])
        self.evaluator = Evaluator(eval_env, seeds)
        self.compression = CompressionCallback(plan, spec.distribution)
        self.points: dict[str, dict] = {}  # evaluation point -> its row and measured network
        self.wall_before = 0.0  # training seconds of earlier attempts (resumed runs)
        self.started = time.perf_counter()
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.last_checkpoint = (0, time.monotonic())  # (env step, wall clock)

    def wall_time(self) -> float:
        return self.wall_before + time.perf_counter() - self.started

    def checkpoint_if_due(self, model) -> None:
        if self.checkpoint_dir is None:
            return
        step, clock = self.last_checkpoint
        if self.checkpoint_every is not None:
            due = model.num_timesteps - step >= self.checkpoint_every
        else:
            due = time.monotonic() - clock >= CHECKPOINT_SECONDS
        if due:
            self.save(model)

    def save(self, model) -> None:
        from nnc4rl.checkpoint import save_checkpoint

        save_checkpoint(self.checkpoint_dir, model, {
            "key": self.key, "compression": self.compression.state(),
            "rows": self.evaluator.rows, "points": self.points, "wall_time_s": self.wall_time(),
        })  # fmt: skip
        self.last_checkpoint = (model.num_timesteps, time.monotonic())

    def resume(self, env):
        """The model of the checkpoint in ``checkpoint_dir`` with this run's state restored, or
        ``None`` when there is none. Raises ``ConfigError`` if it belongs to another run."""
        from nnc4rl.checkpoint import load_checkpoint

        loaded = load_checkpoint(self.checkpoint_dir, env)
        if loaded is None:
            return None
        model, extra = loaded
        if json.dumps(extra["key"], sort_keys=True) != json.dumps(self.key, sort_keys=True):
            raise ConfigError(
                f"checkpoint in {str(self.checkpoint_dir)!r} belongs to a run with other "
                "arguments: resume with the same arguments, or delete it"
            )
        self.compression.restore(model, extra["compression"])
        self.evaluator.rows = extra["rows"]
        self.points = extra["points"]
        self.wall_before = extra["wall_time_s"]
        self.last_checkpoint = (model.num_timesteps, time.monotonic())
        return model

    def evaluate_point(self, name: str, model, bits: int | None) -> None:
        """Evaluate the current network as point ``name`` and measure its tensors."""
        from nnc4rl.measure import measure_state_dict

        row = self.evaluator.evaluate(model, model.num_timesteps,
                                      self.compression.network_phase().value)  # fmt: skip
        self.points[name] = {"row": row, "measured": measure_state_dict(
            model.policy.state_dict(), bits)}  # fmt: skip

    def ptq_points(self, model) -> None:
        """The network at T rounded to each of ``evaluation.ptq_bits`` bits without training
        (post-training quantization, the free baseline), evaluated and measured; the weights
        are restored exactly afterwards, so training continues untouched."""
        import torch

        from nnc4rl.measure import measure_state_dict
        from nnc4rl.quant import fake_quantize, is_per_channel

        layers = self.compression.network.layers
        for bits in self.hyper["evaluation"].get("ptq_bits") or []:
            kept = [layer.weight.detach().clone() for layer in layers]
            with torch.no_grad():
                for layer in layers:
                    layer.weight.copy_(fake_quantize(layer.weight, bits, is_per_channel(layer)))
            returns = self.evaluator.returns(model)
            measured = measure_state_dict(model.policy.state_dict(), bits)
            with torch.no_grad():
                for layer, w in zip(layers, kept, strict=True):
                    layer.weight.copy_(w)
            phase = self.compression.network_phase().value
            row = Evaluator.row(model.num_timesteps, phase, returns) | {"returns": returns}
            self.points[f"ptq{bits}"] = {"row": row, "measured": measured}


def checkpoint_dir_for(out: str | Path) -> Path:
    """Where ``nnc4rl train --out DIR`` keeps its checkpoint: ``.<DIR name>.checkpoint`` beside it."""
    out = Path(out)
    return out.parent / f".{out.name}.checkpoint"


def train(
    spec: RunSpec,
    out: str | Path,
    progress: bool | None = None,
    *,
    checkpoint_every: int | None = None,
    resume: bool = False,
    checkpoint_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train, evaluate and save one run into the folder ``out`` (which must not exist yet).

    :param progress: show a progress bar; ``None`` shows it when stderr is a terminal.
    :param checkpoint_every: env steps between checkpoints (``None``: every ~5 minutes of work).
    :param resume: continue from the checkpoint in ``checkpoint_dir`` if there is one (same
        arguments required); without it an existing checkpoint is an error.
    :param checkpoint_dir: the checkpoint folder (default :func:`checkpoint_dir_for` ``(out)``);
        removed once the run is finished.
    :returns: the summary also written to ``out/summary.json``.
    :raises ConfigError: on bad input, before anything is written.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"out={str(out)!r} already exists: choose a new folder")
    if checkpoint_every is not None:
        check_int(checkpoint_every, "checkpoint_every")
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else checkpoint_dir_for(out)
    if not resume and ckpt.exists():
        raise ConfigError(
            f"an unfinished run's checkpoint is in {str(ckpt)!r}: add --resume (with the same "
            "arguments) to continue it, or delete it"
        )
    spec, hyper = resolve(spec)
    remove_dead_partials(out.parent, out.name)  # left by a killed attempt at this run
    with atomic_dir(out) as tmp:
        summary = _train_into(spec, hyper, tmp, progress, ckpt, checkpoint_every, resume)
    shutil.rmtree(ckpt, ignore_errors=True)
    return summary


def _train_into(spec, hyper, folder: Path, progress, ckpt: Path, every, resume: bool) -> dict:
    import torch
    from stable_baselines3.common.callbacks import CallbackList, ProgressBarCallback

    torch.set_num_threads(spec.threads)
    plan = make_plan(spec, hyper)
    env, eval_env = make_envs(spec)
    try:
        run = _Run(spec, hyper, plan, eval_env, ckpt, every)
        model = run.resume(env) if resume else None
        fresh = model is None
        if fresh:
            model = build_model(spec, hyper, env, plan)
        callbacks = [run.compression, *_callbacks(run)]
        if progress if progress is not None else sys.stderr.isatty():
            callbacks.append(ProgressBarCallback())
        callback = CallbackList(callbacks)
        if model.num_timesteps < plan.T:  # stage 1: [0, T)
            model.learn(plan.T - model.num_timesteps, callback=callback,
                        reset_num_timesteps=fresh)  # fmt: skip
        if "finetune_end" not in run.points:  # the fp32 network at T (finalized unless extending)
            run.evaluate_point("finetune_end", model, None)
            run.ptq_points(model)
        final = "finetune_end"
        if plan.extends:  # stage 2: [T, 1.2 T), QAT or the equal-length control
            if model.num_timesteps < plan.total_steps:
                model.learn(plan.total_steps - model.num_timesteps, callback=callback,
                            reset_num_timesteps=False)  # fmt: skip
            run.compression.finalize()
            final = "qat_end" if plan.quantize else "extra_finetune_end"
            run.evaluate_point(final, model, spec.bits if plan.quantize else None)
        wall = run.wall_time()
        model.save(folder / "model.zip")
    finally:
        env.close()
        eval_env.close()
    return _write_summary(spec, hyper, plan, run, model, folder, wall, final)


def _write_summary(spec, hyper, plan, run: _Run, model, folder: Path, wall: float, final: str):
    import stable_baselines3
    import torch

    import nnc4rl
    from nnc4rl.measure import measure_model_zip
    from nnc4rl.numerics import platform_record

    measured = measure_model_zip(folder / "model.zip", spec.bits if spec.quantize else None)
    if run.points[final]["measured"]["network_sha256"] != measured["network_sha256"]:
        raise RuntimeError("the saved model differs from the last evaluated network")
    summary = {
        "schema": SCHEMA_VERSION,
        "algo": spec.algo,
        "env": spec.env,
        "arch": spec.arch,
        "seed": spec.seed,
        "target_sparsity": float(spec.sparsity),
        "distribution": spec.distribution,
        "quantized": spec.quantize,
        "bits": spec.bits if spec.quantize else 32,
        "extra_finetune": spec.extra_finetune,
        "T": spec.steps,
        "total_steps": int(model.num_timesteps),
        "n_envs": spec.n_envs,
        "threads": spec.threads,
        "device": spec.device,
        "wall_time_s": wall,
        "measured_sparsity": measured["measured_sparsity"],
        "network_sha256": measured["network_sha256"],
        "layer_sparsity": measured["layer_sparsity"],
        "size": measured["size"],
        "size_layers": measured["size_layers"],
        "eval_seeds": run.evaluator.seeds,
        # each evaluation point with the size of the network evaluated there (fp32 at T)
        "eval": {
            name: {f: p["row"][f] for f in ("step", "phase", "mean", "std", "episodes", "returns")}
            | {
                f: p["measured"][f]
                for f in ("measured_sparsity", "params", "nnz", "size", "network_sha256")
            }  # fmt: skip
            for name, p in sorted(run.points.items(), key=lambda kv: kv[1]["row"]["step"])
        },
        "plan": plan.to_dict(),
        "hyperparameters": hyper,
        "overrides": spec.overrides,
        "versions": {
            "nnc4rl": nnc4rl.__version__,
            "stable_baselines3": stable_baselines3.__version__,
            "torch": torch.__version__,
        },
        # where a replay of the saved policy is bit-exact (tests/test_shipped_runs.py)
        "platform": platform_record(spec.env),
    }
    if "quantization" in measured:
        summary["quantization"] = measured["quantization"]
    validate_summary(summary)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    csv_text = io.StringIO()
    writer = csv.DictWriter(csv_text, fieldnames=EVAL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(run.evaluator.rows)
    (folder / "evaluations.csv").write_text(csv_text.getvalue())
    return summary

"""One training run: ``RunSpec`` -> train + evaluate -> a run folder.

A run folder holds ``model.zip`` (plain SB3, exactly the last evaluated network) with its
signature ``model.zip.sig`` (:mod:`nnc4rl.core.trust`: export unpickles only signed files),
``summary.json`` (what was run and what was measured from the saved tensors, schema in
:mod:`nnc4rl.runs.schema`) and ``evaluations.csv`` (periodic deterministic evaluations for learning
curves). It is written into a hidden temporary folder beside the target and renamed when
complete, so a folder with the target's name is always a finished run.

The pieces live beside it: the spec (:mod:`nnc4rl.runs.spec`), the envs and their paired
evaluation episodes (:mod:`nnc4rl.core.envs`, :mod:`nnc4rl.runs.evaluation`), writing the
folder (:mod:`nnc4rl.runs.summary`); this module holds the training stages.

*Training in two stages.* A run that trains past ``T`` (QAT, or the equal-length control) calls
``learn(T)``, evaluates the fp32 network at ``T``, then continues to ``1.2 T``: whatever SB3
derives from ``learn``'s total (DQN's exploration schedule) is measured on ``T``, so up to ``T``
a quantized run is bit for bit the unquantized run of the same seed.

*Checkpoints.* With a checkpoint folder the run saves :mod:`nnc4rl.runs.checkpoint` state every
``checkpoint_every`` env steps (default: every ~5 minutes of wall time); ``resume=True``
continues from it and gives exactly the numbers of an uninterrupted run (only ``wall_time_s``
differs).
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from nnc4rl.compress.plan import TrainingPlan, steps_to_train
from nnc4rl.core.atomic import atomic_dir, remove_dead_partials
from nnc4rl.core.config import ConfigError, check_int
from nnc4rl.core.envs import evaluation_seeds, make_envs
from nnc4rl.core.trust import sign_file
from nnc4rl.runs.evaluation import Evaluator
from nnc4rl.runs.lock import RunLock, lock_path
from nnc4rl.runs.spec import IMAGE_ARCHS, RunSpec, make_plan, resolve, spec_fields
from nnc4rl.runs.summary import write_summary

# Without --checkpoint-every, a checkpoint every this many seconds of training (~5 min of work).
CHECKPOINT_SECONDS = 300.0


def build_model(spec: RunSpec, hyper: dict[str, dict[str, Any]], env, plan: TrainingPlan):
    """The SB3 model of ``spec`` with its hyperparameters (an off-policy replay buffer capped at
    the run). Two YAML values become objects: ``policy_kwargs.activation_fn`` (``relu`` /
    ``tanh``) and a number ``action_noise`` (the std of SB3's ``NormalActionNoise``)."""
    from torch import nn

    from nnc4rl.compress.algos import algo_by_name
    from nnc4rl.compress.networks import ARCH_PRESETS, ImpalaCNN

    info = algo_by_name(spec.algo)
    kwargs = _sb3_objects(copy.deepcopy(hyper["sb3"]), env)  # SB3 writes into policy_kwargs
    if not info.on_policy:
        # Capped at 1.2 T for every run of this T, quantized or not: a buffer of another size
        # would make the unquantized run differ from a quantized one before T (it wraps earlier).
        cap = steps_to_train(plan.T, extends=True)
        kwargs["buffer_size"] = max(1, min(int(kwargs.get("buffer_size", 1_000_000)), cap))
    policy_kwargs = dict(kwargs.get("policy_kwargs") or {})
    if isinstance(policy_kwargs.get("activation_fn"), str):
        activations = {"relu": nn.ReLU, "tanh": nn.Tanh}
        name = policy_kwargs["activation_fn"]
        if name not in activations:
            raise ConfigError(f"activation_fn={name!r} is invalid: choose one of relu, tanh")
        policy_kwargs["activation_fn"] = activations[name]
    if spec.arch in ARCH_PRESETS:
        policy_kwargs["features_extractor_class"] = ImpalaCNN
        policy_kwargs["features_extractor_kwargs"] = ARCH_PRESETS[spec.arch]
    if policy_kwargs or "policy_kwargs" in kwargs:
        kwargs["policy_kwargs"] = policy_kwargs
    policy = "CnnPolicy" if spec.arch in IMAGE_ARCHS else "MlpPolicy"
    algo_class = info.load_class()
    try:
        return algo_class(policy, env, seed=spec.seed, device=spec.device, verbose=0, **kwargs)
    except (TypeError, ValueError, AssertionError) as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"hyperparameters rejected by {algo_class.__name__}: {msg}") from None


def _sb3_objects(kwargs: dict[str, Any], env) -> dict[str, Any]:
    """``kwargs`` with a number ``action_noise`` made SB3's ``NormalActionNoise`` of that std."""
    import numpy as np
    from stable_baselines3.common.noise import NormalActionNoise

    noise = kwargs.get("action_noise")
    if isinstance(noise, (int, float)) and not isinstance(noise, bool):
        n = int(np.prod(env.action_space.shape))
        kwargs["action_noise"] = NormalActionNoise(np.zeros(n), float(noise) * np.ones(n))
    return kwargs


def load_trained_model(spec: RunSpec, hyper: dict[str, dict[str, Any]], env, plan: TrainingPlan):
    """The trained ``spec.init_model`` on ``env``, ready to be compressed from step 0.

    It keeps the hyperparameters it was saved with except the overrides (``hyper["sb3"]``, e.g.
    ``learning_starts``). An off-policy model.zip holds no replay buffer (SB3 saves it apart):
    fine-tuning starts with an empty one, capped at the run's 1.2 T like a fresh run's, and
    ``learning_starts`` counts from the compression's step 0, so the first updates wait for it.
    The clock restarts at 0 (the plan's clock); the env steps it was trained are recorded.
    """
    from nnc4rl.compress.algos import algo_by_name

    info = algo_by_name(spec.algo)
    custom = _sb3_objects(copy.deepcopy(hyper["sb3"]), env) | {"seed": spec.seed}
    if not info.on_policy:
        cap = steps_to_train(plan.T, extends=True)
        custom["buffer_size"] = max(1, min(int(custom.get("buffer_size", 1_000_000)), cap))
    try:
        model = info.load_class().load(spec.init_model, env=env, device=spec.device,
                                       custom_objects=custom)  # fmt: skip
    except Exception as err:  # noqa: BLE001 - a model that does not fit the env is bad input
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"model={spec.init_model!r} does not load on {spec.env}: {msg}") from None
    trained_steps = int(model.num_timesteps)
    model.num_timesteps = 0  # learn(reset_num_timesteps=True) starts the plan's clock at 0
    return model, trained_steps


def _learn_call_ends_here(callback) -> bool:
    """Whether the ``learn`` call ends after this env step (the runner then evaluates the point,
    after the step's update): at its target, once the rollout holding it is complete. PPO / A2C
    finish their ``n_steps`` rollout past the target (T = 2e5 with 2048-step rollouts ends at
    200 704), so a periodic evaluation at the target is not the call's end there."""
    if callback.num_timesteps < callback.model._total_timesteps:
        return False
    loc = callback.locals
    if "n_rollout_steps" in loc:  # on-policy; ``n_steps`` counts this rollout's earlier steps
        return loc["n_steps"] + 1 >= loc["n_rollout_steps"]
    if "train_freq" in loc:  # off-policy: a rollout of train_freq steps or episodes
        from stable_baselines3.common.utils import should_collect_more_steps

        episodes = loc["num_collected_episodes"] + sum(map(bool, loc["dones"]))
        return not should_collect_more_steps(loc["train_freq"], loc["num_collected_steps"],
                                             episodes)  # fmt: skip
    return True


def _callbacks(run: _Run):
    """SB3 callbacks of a run: the periodic evaluation, the checkpoint writer and the updates'
    denormal flushing."""
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    class PeriodicEval(BaseCallback):
        """Evaluate each time ``num_timesteps`` crosses a multiple of ``eval_freq`` inside a
        ``learn`` call; the end of each call (T, 1.2 T) is evaluated by the runner. It runs after
        the compression callback, so an event step's evaluation sees that step's pruning."""

        def _on_step(self) -> bool:
            step, n, every = self.num_timesteps, self.model.n_envs, run.eval_freq
            if step // every > (step - n) // every and not _learn_call_ends_here(self):
                run.evaluator.evaluate(self.model, step, run.compression.network_phase().value)
            return True

    class Checkpointer(BaseCallback):
        """Save a checkpoint between two rollouts once it is due (see :mod:`nnc4rl.runs.checkpoint`)."""

        def _on_rollout_start(self) -> None:
            run.checkpoint_if_due(self.model)

        def _on_step(self) -> bool:
            return True

    class DenormalsFlushedInUpdates(BaseCallback):
        """Gradient updates with denormal floats flushed to zero; rollouts and evaluations
        without. Adam drives some weights and activations of a long SAC run into the denormal
        range (thousands of the Hopper actor's weights by 3e4 steps), where every multiply takes
        the CPU's slow path: the update ran 14x slower (85 ms against 6 ms for an actor + critic
        forward pass on a batch of 256), and the run at ~15 env steps/s. Flushing changes an
        update only where a denormal occurs, so short runs are unchanged; evaluations never
        flush, so a saved network replays its reported returns in any process."""

        def _on_rollout_end(self) -> None:  # the update follows
            torch.set_flush_denormal(True)

        def _on_rollout_start(self) -> None:
            torch.set_flush_denormal(False)

        def _on_training_end(self) -> None:
            torch.set_flush_denormal(False)

        def _on_step(self) -> bool:
            return True

    return [PeriodicEval(), Checkpointer(), DenormalsFlushedInUpdates()]


class _Run:
    """The mutable state of one training run that a checkpoint must carry besides the model."""

    def __init__(self, spec, hyper, plan, eval_env, checkpoint_dir, checkpoint_every):
        from nnc4rl.compress.callback import CompressionCallback

        self.spec, self.hyper, self.plan = spec, hyper, plan
        self.key = json.loads(json.dumps({"spec": spec_fields(spec), "hyperparameters": hyper}))
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
        self.trained_steps: int | None = None  # env steps the input model had (compress only)

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
        from nnc4rl.runs.checkpoint import save_checkpoint

        save_checkpoint(self.checkpoint_dir, model, {
            "key": self.key, "compression": self.compression.state(),
            "rows": self.evaluator.rows, "points": self.points, "wall_time_s": self.wall_time(),
            "trained_steps": self.trained_steps,
        })  # fmt: skip
        self.last_checkpoint = (model.num_timesteps, time.monotonic())

    def resume(self, env):
        """The model of the checkpoint in ``checkpoint_dir`` with this run's state restored, or
        ``None`` when there is none. Raises ``ConfigError`` if it belongs to another run."""
        from nnc4rl.runs.checkpoint import load_checkpoint

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
        self.trained_steps = extra.get("trained_steps")
        self.last_checkpoint = (model.num_timesteps, time.monotonic())
        return model

    def evaluate_point(self, name: str, model, bits: int | None) -> None:
        """Evaluate the current network as point ``name`` and measure its tensors."""
        from nnc4rl.compress.measure import measure_state_dict

        row = self.evaluator.evaluate(model, model.num_timesteps,
                                      self.compression.network_phase().value)  # fmt: skip
        self.points[name] = {"row": row, "measured": measure_state_dict(
            model.policy.state_dict(), bits, self.spec.algo)}  # fmt: skip

    def ptq_points(self, model) -> None:
        """The network at T rounded to each of ``evaluation.ptq_bits`` bits without training
        (post-training quantization, the free baseline), evaluated and measured; the weights
        are restored exactly afterwards, so training continues untouched."""
        import torch

        from nnc4rl.compress.measure import measure_state_dict
        from nnc4rl.compress.quant import fake_quantize, is_per_channel

        layers = self.compression.network.layers
        for bits in self.hyper["evaluation"].get("ptq_bits") or []:
            kept = [layer.weight.detach().clone() for layer in layers]
            with torch.no_grad():
                for layer in layers:
                    layer.weight.copy_(fake_quantize(layer.weight, bits, is_per_channel(layer)))
            returns = self.evaluator.returns(model)
            measured = measure_state_dict(model.policy.state_dict(), bits, self.spec.algo)
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
    tensorboard: str | Path | None = None,
) -> dict[str, Any]:
    """Train, evaluate and save one run into the folder ``out`` (which must not exist yet).

    :param progress: show a progress bar; ``None`` shows it when stderr is a terminal.
    :param checkpoint_every: env steps between checkpoints (``None``: every ~5 minutes of work).
    :param resume: continue from the checkpoint in ``checkpoint_dir`` if there is one (same
        arguments required); without it an existing checkpoint is an error.
    :param checkpoint_dir: the checkpoint folder (default :func:`checkpoint_dir_for` ``(out)``);
        removed once the run is finished.
    :param tensorboard: a folder for SB3's TensorBoard log (``compression/*`` included); it does
        not change the run, so it is not part of its key.
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
    out.parent.mkdir(parents=True, exist_ok=True)
    # One process per run folder: a second ``train --resume`` of it would race for its
    # checkpoint and its folder; the kernel drops the lock however its owner dies.
    lock = RunLock(lock_path(out.parent, out.name))
    if not lock.acquire():
        raise ConfigError(f"out={str(out)!r} is being trained by another process "
                          f"({lock.owner()}): wait for it, or choose another --out")  # fmt: skip
    try:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):  # finished meanwhile
            raise ConfigError(f"out={str(out)!r} already exists: choose a new folder")
        remove_dead_partials(out.parent, out.name)  # left by a killed attempt at this run
        with atomic_dir(out) as tmp:
            summary = _train_into(spec, hyper, tmp, progress, ckpt, checkpoint_every, resume,
                                  tensorboard)  # fmt: skip
        shutil.rmtree(ckpt, ignore_errors=True)
    finally:
        lock.release()
    return summary


def _train_into(spec, hyper, folder: Path, progress, ckpt: Path, every, resume: bool,
                tensorboard: str | Path | None = None) -> dict:  # fmt: skip
    import torch
    from stable_baselines3.common.callbacks import CallbackList, ProgressBarCallback

    torch.set_num_threads(spec.threads)
    plan = make_plan(spec, hyper)
    env, eval_env = make_envs(spec.env, spec.seed, spec.n_envs)
    try:
        run = _Run(spec, hyper, plan, eval_env, ckpt, every)
        model = run.resume(env) if resume else None
        fresh = model is None
        if fresh and spec.init_model is not None:  # nnc4rl compress: a trained dense model
            model, run.trained_steps = load_trained_model(spec, hyper, env, plan)
            run.evaluate_point("input", model, None)  # on the same paired episodes as the result
        elif fresh:
            model = build_model(spec, hyper, env, plan)
        if tensorboard is not None:  # SB3 configures its logger from it at every learn call
            model.tensorboard_log = str(tensorboard)
        callbacks = [run.compression, *_callbacks(run)]
        if progress if progress is not None else sys.stderr.isatty():
            callbacks.append(ProgressBarCallback())
        callback = CallbackList(callbacks)
        if model.num_timesteps < plan.T:  # stage 1: [0, T); stopping at T is the runner's plan
            from nnc4rl.compress.callback import PlanNotFinishedWarning

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PlanNotFinishedWarning)
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
        sign_file(folder / "model.zip")  # export loads only a model.zip signed here
    finally:
        env.close()
        eval_env.close()
    return write_summary(spec, hyper, plan, run, model, folder, wall, final)

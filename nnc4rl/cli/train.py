"""``nnc4rl train``: train one compressed agent into a run folder (:mod:`nnc4rl.runs.runner`)."""

from __future__ import annotations

import argparse

from nnc4rl.cli.types import bits, bounded_int, fraction, positive_int
from nnc4rl.compress.pruning import DISTRIBUTIONS
from nnc4rl.core.config import MAX_SEED, MAX_THREADS, parse_set
from nnc4rl.runs.spec import ALGOS, ARCHS, RunSpec


def register(subparsers) -> None:
    """Add ``nnc4rl train``."""
    t = subparsers.add_parser(
        "train",
        help="train one compressed agent into a run folder",
        description="Train an SB3 agent (SAC, TQC, TD3, DDPG, DQN, PPO, A2C) with gradual "
        "magnitude pruning (0.2-0.8 T), fine-tuning (0.8-1 T) and, with --quantize, QAT "
        "(1-1.2 T); evaluate; save model.zip (with its signature model.zip.sig), summary.json "
        "and evaluations.csv into --out.",
    )
    t.add_argument("--algo", required=True, choices=ALGOS)
    t.add_argument("--env", required=True, help="gymnasium id, e.g. Hopper-v4, PongNoFrameskip-v4")
    t.add_argument("--arch", choices=ARCHS, help="network (default: mlp, or cnn on Atari)")
    add_run_arguments(t, steps_help="the paper's T (env steps)")
    t.set_defaults(func=_run_train)


def add_run_arguments(t, steps_help: str) -> None:
    """The compression, seed, output, checkpoint and machine options ``train`` and
    ``compress`` share."""
    t.add_argument("--sparsity", type=fraction, default=0.0, help="final sparsity in [0, 1)")
    t.add_argument("--distribution", choices=DISTRIBUTIONS, default="erdos_renyi")
    t.add_argument("--quantize", action="store_true", help="add the QAT phase (1.2 T steps)")
    t.add_argument("--extra-finetune", action="store_true",
                   help="without --quantize: fine-tune to 1.2 T (the equal-length control)")  # fmt: skip
    t.add_argument("--bits", type=bits, default=8, help="QAT bit width, 2..8 (default 8)")
    t.add_argument("--steps", type=positive_int, required=True, help=steps_help)
    t.add_argument("--seed", type=bounded_int(0, MAX_SEED), default=0,
                   help=f"RNG seed, 0..{MAX_SEED} (default 0)")  # fmt: skip
    t.add_argument("--out", required=True, help="run folder to create (must not exist)")
    t.add_argument("--checkpoint-every", type=positive_int, metavar="N",
                   help="env steps between checkpoints (default: every ~5 minutes of training); "
                   "the checkpoint lives in .<out name>.checkpoint beside --out")  # fmt: skip
    t.add_argument("--resume", action="store_true",
                   help="continue a killed run from its checkpoint (same arguments)")  # fmt: skip
    t.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a hyperparameter (YAML value; dotted keys for nested), repeatable",
    )
    t.add_argument("--n-envs", type=bounded_int(1, MAX_THREADS), default=1)
    t.add_argument("--threads", type=bounded_int(1, MAX_THREADS), default=1,
                   help=f"torch threads, 1..{MAX_THREADS} (default 1)")  # fmt: skip
    t.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on a terminal)")  # fmt: skip
    t.add_argument("--tensorboard", default=None, metavar="DIR",
                   help="write SB3's TensorBoard log (compression/* included) into DIR")  # fmt: skip


def print_summary(s: dict) -> None:
    """The run's one-screen report (``train`` and ``compress``)."""
    size = s["size"]
    weights = f"int{s['bits']}" if s["quantized"] else "fp32"
    lines = [
        f"{s['algo'].upper()} {s['env']} ({s['arch']}), seed {s['seed']}: "
        f"{s['total_steps']} env steps in {s['wall_time_s']:.0f} s",
        f"  sparsity: target {s['target_sparsity']:.4f}, measured {s['measured_sparsity']:.4f} "
        f"({s['distribution']}); weights: {weights}",
        f"  size: {size['fp32_bytes']} B fp32 -> {size['compressed_bytes']} B stored "
        f"(real {size['real_ratio']:.1f}x; nominal {size['nominal_ratio']:.1f}x)",
    ]
    for name, e in s["eval"].items():
        lines.append(
            f"  eval {name} (step {e['step']}): {e['mean']:.1f} +- {e['std']:.1f} "
            f"over {e['episodes']} episodes"
        )
    if "input" in s["eval"]:  # nnc4rl compress: the cost against the input, episode by episode
        final = "qat_end" if s["quantized"] else max(
            (p for p in s["eval"] if p in ("finetune_end", "extra_finetune_end")),
            key=lambda p: s["eval"][p]["step"])  # fmt: skip
        diff = [a - b for a, b in zip(s["eval"][final]["returns"], s["eval"]["input"]["returns"],
                                      strict=True)]  # fmt: skip
        lines.append(f"  compression cost: {final} - input = {sum(diff) / len(diff):+.1f} mean "
                     f"return over the same {len(diff)} episodes")  # fmt: skip
    if s.get("value_function"):
        lines.append(f"  value function: {s['value_function']}")
    print("\n".join(lines))


def spec_from_args(args: argparse.Namespace, **extra) -> RunSpec:
    """The :class:`RunSpec` of parsed ``train`` / ``compress`` arguments."""
    return RunSpec(
        algo=args.algo,
        env=args.env,
        steps=args.steps,
        seed=args.seed,
        arch=getattr(args, "arch", None),
        sparsity=args.sparsity,
        distribution=args.distribution,
        quantize=args.quantize,
        bits=args.bits,
        extra_finetune=args.extra_finetune,
        overrides=parse_set(args.overrides),
        n_envs=args.n_envs,
        threads=args.threads,
        device=args.device,
        **extra,
    )


def _run_train(args: argparse.Namespace) -> int:
    from nnc4rl.runs.runner import train
    from nnc4rl.runs.spec import check_gradient_steps, resolve

    spec = spec_from_args(args)
    check_gradient_steps(*resolve(spec))  # the CLI's silent no-op: a run with no update
    summary = train(spec, args.out, progress=args.progress, checkpoint_every=args.checkpoint_every,
                    resume=args.resume, tensorboard=args.tensorboard)  # fmt: skip
    print_summary(summary)
    print(f"  wrote {args.out}/model.zip (signed: model.zip.sig), summary.json, evaluations.csv")
    return 0

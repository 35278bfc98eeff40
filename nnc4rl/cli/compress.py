"""``nnc4rl compress``: compress an agent that is already trained (:mod:`nnc4rl.runs.runner`)."""

from __future__ import annotations

import argparse

from nnc4rl.cli.train import add_run_arguments, print_summary, spec_from_args
from nnc4rl.runs.spec import ALGOS, ARCHS


def register(subparsers) -> None:
    """Add ``nnc4rl compress``."""
    c = subparsers.add_parser(
        "compress",
        help="prune (and quantize) an already trained SB3 model.zip while fine-tuning it",
        description="Load a trained SB3 model.zip, evaluate it, then fine-tune it for --steps "
        "env steps with the training plan's schedule: dense 0-0.2 N (an off-policy agent, saved "
        "without its replay buffer, refills it here; set learning_starts with --set), gradual "
        "magnitude pruning 0.2-0.8 N, fine-tuning 0.8-1 N and, with --quantize, QAT 1-1.2 N. "
        "The input model is evaluated on the same paired episodes as the result, so the summary "
        "says what the compression cost.",
    )
    c.add_argument("model", help="the trained SB3 model.zip (loading it runs its pickles: "
                   "only compress files you trust)")  # fmt: skip
    c.add_argument("--algo", choices=ALGOS, help="the algorithm that saved it (default: read "
                   "from the file)")  # fmt: skip
    c.add_argument("--env", required=True, help="the gymnasium id it was trained on")
    c.add_argument("--arch", choices=ARCHS, help="its network's name (default: mlp, or cnn on "
                   "Atari); the network itself is the model's")  # fmt: skip
    add_run_arguments(c, steps_help="N: env steps of the plan (its T)")
    c.set_defaults(func=_run_compress)


def _run_compress(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nnc4rl.core.config import ConfigError
    from nnc4rl.export.trace import saved_algo
    from nnc4rl.runs.runner import train

    if not Path(args.model).is_file():
        raise ConfigError(f"model={args.model!r} does not exist: give an SB3 model.zip")
    args.algo = args.algo or saved_algo(args.model)
    spec = spec_from_args(args, init_model=str(args.model))
    summary = train(spec, args.out, progress=args.progress,
                    checkpoint_every=args.checkpoint_every, resume=args.resume)  # fmt: skip
    print_summary(summary)
    print(f"  wrote {args.out}/model.zip, summary.json, evaluations.csv")
    return 0

"""``nnc4rl sweep``: train every missing run of a profile (:mod:`nnc4rl.runs.sweep`)."""

from __future__ import annotations

import argparse
import sys

from nnc4rl.cli.types import bounded_int, positive_float
from nnc4rl.core.config import MAX_WORKERS
from nnc4rl.runs.profiles import FIGURES, profile_names
from nnc4rl.runs.sweep import QuietPipe, sweep, terminate_on_sigterm


def register(subparsers) -> None:
    """Add ``nnc4rl sweep``."""
    p = subparsers.add_parser(
        "sweep",
        help="train every missing run of a reproduction profile",
        description="Fill data/runs/<profile>/ with every run of a profile (smoke, mini, paper); "
        "finished runs are reused, so a killed sweep resumes.",
    )
    p.add_argument("--profile", required=True, help=f"one of {', '.join(profile_names())}")
    p.add_argument("--figure", help=f"only the runs of one figure: {', '.join(FIGURES)}")
    p.add_argument("--env", dest="envs", action="append", help="only this env (repeatable)")
    p.add_argument("--executor", default="local", help="local (process pool, default) or ray")
    p.add_argument(
        "--workers",
        type=bounded_int(1, MAX_WORKERS),
        help=f"parallel runs, 1..{MAX_WORKERS} (default: CPU count / torch threads per run)",
    )
    p.add_argument("--address", help="Ray cluster HOST:PORT (default: start a local Ray)")
    p.add_argument("--data", help="data folder (default: <repo>/data or $NNC4RL_DATA)")
    p.add_argument(
        "--dry-run", action="store_true", help="print the plan and estimate, run nothing"
    )
    p.add_argument("--force", action="store_true", help="recompute finished runs too")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument(
        "--time-limit",
        type=positive_float,
        metavar="MINUTES",
        help="start a run only while its estimated time fits in this many minutes from now "
        "(a job's walltime); runs started finish, the rest wait for the next sweep",
    )
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    terminate_on_sigterm()
    result = sweep(args.profile, args.figure, args.envs, args.executor, args.workers,
                   args.address, args.dry_run, args.force, args.data,
                   args.progress if args.progress is not None else sys.stderr.isatty(),
                   out=QuietPipe(sys.stdout), time_limit=args.time_limit)  # fmt: skip
    return 1 if result.failed else 0

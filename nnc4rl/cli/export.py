"""``nnc4rl export``: write a trained, quantized policy as an npz artifact, ONNX model or C pair."""

from __future__ import annotations

import argparse

from nnc4rl.cli.types import positive_int

FORMATS = ("npz", "onnx", "c")


def register(subparsers) -> None:
    """Add the ``export`` subcommand to the ``nnc4rl`` parser."""
    p = subparsers.add_parser(
        "export",
        help="export a compressed policy (npz artifact, ONNX QDQ, or C99 source)",
        description="Export the compressed deployed network (SAC / TQC / TD3 / DDPG actor, DQN "
        "Q-network, PPO / A2C action path) of a run folder (model.zip "
        "or a run-store policy.npz inside), model.zip or artifact .npz. The model must be "
        "quantized (trained with --quantize): its weights must lie on a symmetric int grid. "
        "Format: nnc4rl/export/FORMAT.md. Safety: an .npz artifact is data only and is checked "
        "before use, so one from a stranger is safe to export; a model.zip is SB3's cloudpickle "
        "format, and loading it runs any code it holds: one that this user's nnc4rl train did not "
        "sign (model.zip.sig) is refused unless --trust-pickle is given.",
    )
    p.add_argument(
        "source",
        metavar="RUN_DIR_OR_MODEL",
        help="run folder, model.zip (signed by nnc4rl train, or --trust-pickle) or .npz",
    )
    p.add_argument("--trust-pickle", action="store_true",
                   help="load a model.zip that nnc4rl train did not sign here (it is unpickled: "
                   "it runs any code it holds)")  # fmt: skip
    p.add_argument("--format", required=True, choices=FORMATS, help="npz, onnx or c")
    p.add_argument("--out", required=True, help="output file (for c: PATH.c, and PATH.h beside)")
    p.add_argument("--bits", type=int, default=None, choices=range(2, 9), metavar="B",
                   help="grid bit width (default: from summary.json, else detected)")  # fmt: skip
    p.add_argument("--integer", action="store_true",
                   help="full-integer path: int8 activations calibrated on held-out episodes "
                   "(reset seeds disjoint from the evaluation's; npz: stores the scales; onnx: integer operators; c: int8/int32 "
                   "code)")  # fmt: skip
    p.add_argument("--calibration-episodes", type=positive_int, default=3, metavar="N",
                   help="held-out episodes played to calibrate (default 3)")  # fmt: skip
    p.add_argument("--env", default=None, help="env id (default: the run's summary.json)")
    p.add_argument("--seed", type=int, default=None,
                   help="the run's seed, for the evaluation seeds (default: the run's)")  # fmt: skip
    p.add_argument(
        "--prefix",
        default=None,
        help="C symbol prefix (default nnc4rl_policy), so policies link together",
    )
    p.add_argument("--remove-dead-units", action="store_true",
                   help="drop hidden units pruning left without incoming or outgoing weights "
                   "(a constant unit folded into the next bias; after calibration, so the integer "
                   "outputs are unchanged bit for bit): nnc4rl/export/dead_units.py")  # fmt: skip
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from nnc4rl.export import artifact_from_path, save_artifact
    from nnc4rl.export.c_export import DEFAULT_PREFIX, check_prefix
    from nnc4rl.export.model import ArtifactError

    if args.format not in FORMATS:
        raise ArtifactError(
            f"format={args.format!r} is invalid: choose one of {', '.join(FORMATS)}"
        )
    if args.prefix is not None and args.format != "c":
        raise ArtifactError("--prefix only applies to --format c")
    prefix = check_prefix(args.prefix or DEFAULT_PREFIX)
    art = artifact_from_path(args.source, args.bits, trust_pickle=args.trust_pickle)
    if args.integer and art.integer is None:
        from nnc4rl.export.closed_loop import calibrate_held_out

        art = calibrate_held_out(art, args.calibration_episodes, args.env, args.seed)
    if args.remove_dead_units:
        from nnc4rl.export.dead_units import remove_dead_units

        art, dead = remove_dead_units(art)
        print(f"dead units removed: {sum(dead.no_outgoing.values())} without outgoing weights, "
              f"{sum(dead.folded.values())} constant ones folded into the next bias, "
              f"{dead.nnz_removed} non-zero weights with them")  # fmt: skip
    try:
        if args.format == "npz":
            written = [(args.out, save_artifact(art, args.out))]
        elif args.format == "onnx":
            from nnc4rl.export.onnx_export import save_onnx

            written = [(args.out, save_onnx(art, args.out, integer=args.integer))]
        else:
            from nnc4rl.export.c_export import save_c

            paths = save_c(art, args.out, prefix=prefix, integer=args.integer)
            written = [(str(p), p.stat().st_size) for p in paths]
    except OSError as err:
        raise ArtifactError(
            f"cannot write --out {args.out!r}: {err.strerror or type(err).__name__}"
        ) from None
    nnz, numel = sum(la.nnz for la in art.layers), sum(la.codes.size for la in art.layers)
    path = "full-integer (int8 activations)" if args.integer else "fp32 activations"
    print(
        f"{art.algo.upper()} policy: {len(art.layers)} layers, int{art.bits} weights, {path}, "
        f"{nnz}/{numel} non-zero weights (sparsity {art.sparsity():.4f})"
    )
    for path, n in written:
        print(f"  wrote {path} ({n} B)")
    return 0

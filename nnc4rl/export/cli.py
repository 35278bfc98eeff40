"""``nnc4rl export``: write a trained, quantized policy as an npz artifact, ONNX model or C pair."""

from __future__ import annotations

import argparse

FORMATS = ("npz", "onnx", "c")


def register(subparsers) -> None:
    """Add the ``export`` subcommand to the ``nnc4rl`` parser."""
    p = subparsers.add_parser(
        "export",
        help="export a compressed policy (npz artifact, ONNX QDQ, or C99 source)",
        description="Export the compressed SAC actor / DQN Q-network of a run folder, model.zip "
        "or artifact .npz. The model must be quantized (trained with --quantize): its weights "
        "must lie on a symmetric int grid. Format: nnc4rl/export/FORMAT.md.",
    )
    p.add_argument("source", metavar="RUN_DIR_OR_MODEL", help="run folder, model.zip or .npz")
    p.add_argument("--format", required=True, choices=FORMATS, help="npz, onnx or c")
    p.add_argument("--out", required=True, help="output file (for c: PATH.c, and PATH.h beside)")
    p.add_argument("--bits", type=int, default=None, choices=range(2, 9), metavar="B",
                   help="grid bit width (default: from summary.json, else detected)")  # fmt: skip
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from nnc4rl.export import artifact_from_path, save_artifact
    from nnc4rl.export.artifact import ArtifactError

    if args.format not in FORMATS:
        raise ArtifactError(
            f"format={args.format!r} is invalid: choose one of {', '.join(FORMATS)}"
        )
    art = artifact_from_path(args.source, args.bits)
    if args.format == "npz":
        written = [(args.out, save_artifact(art, args.out))]
    elif args.format == "onnx":
        from nnc4rl.export.onnx_export import save_onnx

        written = [(args.out, save_onnx(art, args.out))]
    else:
        from nnc4rl.export.c_export import save_c

        written = [(str(p), p.stat().st_size) for p in save_c(art, args.out)]
    nnz, numel = sum(la.nnz for la in art.layers), sum(la.codes.size for la in art.layers)
    print(
        f"{art.algo.upper()} policy: {len(art.layers)} layers, int{art.bits}, "
        f"{nnz}/{numel} non-zero weights (sparsity {art.sparsity():.4f})"
    )
    for path, n in written:
        print(f"  wrote {path} ({n} B)")
    return 0

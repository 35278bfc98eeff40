"""Dead-unit removal on the shipped ``mini`` policies: real stored ratio before and after, and the
closed-loop return of the integer path unchanged.

For each stored SAC HalfCheetah policy of one sparsity (default 0.99) under ``data/runs/mini``:
the real stored ratio (:mod:`nnc4rl.compress.size`: the fp32 bytes of the dense network / every
stored byte: values, indices, fp32 biases, scales) of the artifact as shipped and after
:func:`nnc4rl.export.dead_units.remove_dead_units` (and, removed, with the integer path's biases
stored as the C export stores them: int16 where they fit), and the integer path played on one paired
evaluation episode (calibrated on one held-out episode): the return, and whether the removed network's actions on
every observation of that episode are bit-identical (then so is the episode, the env being
deterministic). All numbers come from one run.
Usage: ``python benchmarks/bench_dead_units.py [--sparsity 0.99] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

RUNS = Path(__file__).resolve().parents[1] / "data" / "runs" / "mini"


def stored_size(art) -> dict:
    """:func:`nnc4rl.compress.size.network_size` of an artifact's layers."""
    import torch

    from nnc4rl.compress.size import network_size

    layers = {la.name: (torch.from_numpy(la.codes.astype(np.float32)),
                        torch.from_numpy(la.bias.astype(np.float32)), la.per_channel)
              for la in art.layers}  # fmt: skip
    return network_size(layers, art.bits)


def integer_stored_bytes(int_art) -> int:
    """Stored bytes of the integer path: :func:`stored_size` with each layer's biases in the
    accumulator-unit integers the C export stores (int16 where they fit, else int32: as many
    bytes as fp32, so no saving is counted there)."""
    from nnc4rl.export.c_kernels import bias_ctype
    from nnc4rl.export.integer import LayerPlan, integer_plan

    narrow = sum(2 * p.bias.size for p in integer_plan(int_art).ops
                 if isinstance(p, LayerPlan) and bias_ctype(p.bias) == "int16_t")  # fmt: skip
    return stored_size(int_art)["compressed_bytes"] - narrow


def run(sparsity: float) -> list[dict]:
    from nnc4rl.export import artifact_from_path, load_policy
    from nnc4rl.export.closed_loop import calibrate_held_out, play
    from nnc4rl.export.dead_units import remove_dead_units

    rows = []
    for run_dir in sorted(RUNS.glob(f"sac-*-s{sparsity:.2f}-q8-*")):
        art = artifact_from_path(run_dir)
        int_art = calibrate_held_out(art, episodes=1)
        small, report = remove_dead_units(int_art)
        before, after = stored_size(int_art), stored_size(small)
        played = play(load_policy(int_art, integer=True), int_art, 1, record=True)
        obs = played["observations"]
        same = bool(np.array_equal(load_policy(small, integer=True).predict(obs)[0],
                                   load_policy(int_art, integer=True).predict(obs)[0]))  # fmt: skip
        rows.append({"run": run_dir.name, "hidden": [la.rows for la in small.layers[:-1]],
                     "nnz": [before["nnz"], after["nnz"]],
                     "real_ratio": [before["real_ratio"],
                                    before["fp32_bytes"] / after["compressed_bytes"]],
                     "stored_bytes": [before["compressed_bytes"], after["compressed_bytes"]],
                     "integer_ratio": before["fp32_bytes"] / integer_stored_bytes(small),
                     "return": played["returns"][0], "actions_identical": same,
                     "folded": sum(report.folded.values()),
                     "no_outgoing": sum(report.no_outgoing.values())})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsity", type=float, default=0.99)
    parser.add_argument("--json", help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*out of date.*")
    rows = run(args.sparsity)
    print(f"{'run':58} {'hidden':>10} {'nnz':>11} {'bytes':>11} {'real ratio':>15} "
          f"{'int16 b':>8} {'return':>8} {'same actions':>12}")  # fmt: skip
    for r in rows:
        print(f"{r['run']:58} {'/'.join(map(str, r['hidden'])):>10} "
              f"{r['nnz'][0]:5d}->{r['nnz'][1]:<5d} {r['stored_bytes'][0]:5d}->"
              f"{r['stored_bytes'][1]:<5d} {r['real_ratio'][0]:6.1f}x->{r['real_ratio'][1]:6.1f}x "
              f"{r['integer_ratio']:7.1f}x {r['return']:8.1f} {str(r['actions_identical']):>12}")  # fmt: skip
    if rows:
        b, a = (np.mean([r["real_ratio"][k] for r in rows]) for k in (0, 1))
        n = np.mean([r["integer_ratio"] for r in rows])
        print(f"mean real stored ratio {b:.1f}x -> {a:.1f}x over {len(rows)} policies; "
              f"{n:.1f}x with the integer path's biases in int16 where they fit (int16 b)")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

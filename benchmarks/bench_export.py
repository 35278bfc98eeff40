"""Benchmark the deployment export on a Hopper-sized SAC actor (int8, sparsities 0-0.99).

Prints stored bytes per encoding against the int8 non-zero floor, and batch-1 latency of the
dense fp32 torch actor, onnxruntime and the compiled C policy as speed-ups over torch, then the
Nature CNN at batch 1: torch against the sparse-aware C and the dense C of the same network (fp32
and int8 activations), all measured in one run. Targets: C at 98 % sparsity >= 20x torch; artifact <= 1.1x the cheapest
encoding. Usage: ``python benchmarks/bench_export.py [--calls 2000] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from nnc4rl.export.bench import (
    SPARSITIES,
    cnn_latencies,
    format_cnn,
    format_table,
    run_benchmark,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per backend")
    parser.add_argument("--sparsities", type=float, nargs="+", default=list(SPARSITIES))
    parser.add_argument("--cnn-sparsity", type=float, default=0.95,
                        help="sparsity of the Nature CNN timed in C vs torch")  # fmt: skip
    parser.add_argument("--json", help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*out of date.*")  # Hopper-v4 vs v5
    rows = run_benchmark(args.sparsities, args.calls)
    print(format_table(rows))
    at98 = [r for r in rows if r["sparsity"] == 0.98]
    if at98:
        lat = at98[0]["latency_us"]
        speedup = lat["torch_dense_fp32"] / lat["c"]
        ratio = at98[0]["sizes"]["artifact"] / at98[0]["sizes"]["cheapest"]
        print(f"\ntargets at 98 %: C speed-up {speedup:.1f}x (>= 20x: {speedup >= 20}), "
              f"artifact {ratio:.3f}x cheapest (<= 1.1x: {ratio <= 1.1})")  # fmt: skip
    cnn = cnn_latencies(args.cnn_sparsity, calls=max(20, args.calls // 20))
    print("\n" + format_cnn(cnn))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sac": rows, "cnn": cnn}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

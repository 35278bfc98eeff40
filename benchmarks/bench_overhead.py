"""Wall-time overhead of compression: plain SB3 SAC vs the same SAC with pruning + QAT active.

Both train for the same number of env steps on Hopper-v4 with one torch thread. The compressed
run follows a full plan (its T is chosen so that 1.2 T equals the step count), so every pruning
event (600, as in the paper) and the whole QAT phase fall inside the timed steps. Runs alternate
plain / compressed ``--repeats`` times; the ratio of the median wall times is printed.

    python benchmarks/bench_overhead.py [--steps 3000] [--repeats 3]

Target: ratio <= 1.03.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
from stable_baselines3 import SAC

from nnc4rl import CompressionCallback, TrainingPlan


def timed_run(steps: int, compressed: bool, seed: int) -> float:
    """Seconds to train ``steps`` env steps (model construction excluded)."""
    model = SAC("MlpPolicy", "Hopper-v4", learning_starts=100, seed=seed, device="cpu")
    callback = None
    if compressed:
        plan = TrainingPlan(T=5 * steps // 6, final_sparsity=0.98, n_events=600, quantize=True)
        assert plan.total_steps == steps
        callback = CompressionCallback(plan)
    start = time.perf_counter()
    model.learn(steps, callback=callback)
    elapsed = time.perf_counter() - start
    if compressed:
        assert callback.finalized and callback.measured_sparsity() >= 0.98 - 1e-4
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="env steps per run (multiple of 6)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    steps = args.steps - args.steps % 6
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    timed_run(200, False, seed=0)  # warm-up: imports, MuJoCo, allocator
    plain, compressed = [], []
    for r in range(args.repeats):
        plain.append(timed_run(steps, False, seed=r))
        compressed.append(timed_run(steps, True, seed=r))
        print(f"repeat {r}: plain {plain[-1]:.2f} s, compressed {compressed[-1]:.2f} s", flush=True)
    ratio = statistics.median(compressed) / statistics.median(plain)
    print(
        f"SAC Hopper-v4, {steps} env steps, 1 thread: plain {statistics.median(plain):.2f} s, "
        f"pruning (600 events, 98 %) + int8 QAT {statistics.median(compressed):.2f} s"
    )
    print(f"wall-time ratio compressed / plain = {ratio:.3f} (target <= 1.03)")


if __name__ == "__main__":
    main()

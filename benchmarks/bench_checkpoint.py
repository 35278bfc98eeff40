"""Wall-time overhead of checkpoints, and the size of one, for a SAC HalfCheetah-v4 run.

The same run (``nnc4rl.runs.runner.train``: SAC HalfCheetah-v4, 98 % + int8 QAT, one torch thread) is
trained without checkpoints and with a checkpoint every ``--every`` env steps - far more often
than the default (one per ~5 minutes of work), so the measured overhead is an upper bound. The
replay buffer is allocated as in a ``mini`` run (1.2e5 transitions, the cap at T = 1e5), so a
checkpoint has the size it has in the real study.
Printed, all measured in this one run: both wall times, their ratio, the seconds and bytes of
one checkpoint, and the overhead at the default cadence (one checkpoint's seconds / 300 s).

    python benchmarks/bench_checkpoint.py [--steps 6000] [--every 1000]

Target: overhead at the default cadence <= 3 %.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

from nnc4rl.runs import runner
from nnc4rl.runs.runner import CHECKPOINT_SECONDS, _Run, train
from nnc4rl.runs.spec import RunSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6000, help="T of the timed runs")
    parser.add_argument("--every", type=int, default=1000, help="env steps between checkpoints")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    spec = RunSpec(algo="sac", env="HalfCheetah-v4", steps=args.steps, seed=0, sparsity=0.98,
                   quantize=True, overrides={"learning_starts": 1000, "eval_freq": 10**9,
                                             "eval_episodes": 1, "ptq_bits": []})  # fmt: skip
    runner.steps_to_train = lambda T, extends: 120_000  # the buffer cap of a T = 1e5 run
    saves: list[tuple[float, int]] = []
    save = _Run.save

    def timed_save(self, model) -> None:
        start = time.perf_counter()
        save(self, model)
        size = (Path(self.checkpoint_dir) / "checkpoint.pkl").stat().st_size
        saves.append((time.perf_counter() - start, size))

    _Run.save = timed_save
    with tempfile.TemporaryDirectory() as tmp:
        plain = train(spec, Path(tmp) / "plain", progress=False)
        ckpt = train(spec, Path(tmp) / "ckpt", progress=False, checkpoint_every=args.every)
    assert plain["eval"] == ckpt["eval"], "checkpoints changed the run"
    seconds = sorted(s for s, _ in saves)[len(saves) // 2]
    size = max(b for _, b in saves)
    ratio = ckpt["wall_time_s"] / plain["wall_time_s"]
    print(json.dumps({"steps": plain["total_steps"], "checkpoints": len(saves)}))
    print(
        f"SAC HalfCheetah-v4, {plain['total_steps']} env steps, 1 thread, replay buffer of "
        f"1.2e5: plain {plain['wall_time_s']:.1f} s, with a checkpoint every {args.every} steps "
        f"({len(saves)} checkpoints) {ckpt['wall_time_s']:.1f} s: ratio {ratio:.3f}"
    )
    print(
        f"one checkpoint: {seconds:.2f} s (median), {size / 2**20:.1f} MiB; at the default "
        f"cadence (every {CHECKPOINT_SECONDS:.0f} s) the overhead is "
        f"{100 * seconds / CHECKPOINT_SECONDS:.2f} % (target <= 3 %)"
    )


if __name__ == "__main__":
    main()

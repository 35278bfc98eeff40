"""Benchmark the exported C policies on a Cortex-M4F instruction set (arm-none-eabi-gcc, QEMU).

For a Hopper-sized SAC actor (11 -> 256 -> 256 -> 3) and the Nature CNN (Pong, 4 x 84 x 84
uint8 frames), pruned (Erdos-Renyi) and int8-quantized, built with ``-mcpu=cortex-m4 -mthumb
-mfloat-abi=hard -mfpu=fpv4-sp-d16 -Os`` and run under ``qemu-system-arm -M mps2-an386``:
text/data/bss of the policy (arm-none-eabi-size), instructions per inference (QEMU ``-icount``,
read through SysTick and calibrated on a loop of known length in the same image) and the implied
latency at 168 MHz (one instruction per cycle), for the full-integer and the fp32-activation
paths and for the same network compiled with every layer stored dense (so sparsity is measured
against the best dense code, not only against PyTorch). The integer outputs are checked bit for
bit against the host's numpy reference. All numbers come from one run.
Usage: ``python benchmarks/bench_mcu.py [--sparsities 0.9 0.98] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

MHZ = 168.0


def _nets(sparsity: float):
    """``[(name, weight-only artifact, integer artifact, observations)]`` for one sparsity."""
    from nnc4rl.core.envs import make_envs
    from nnc4rl.export import artifact_from_sb3, load_policy
    from nnc4rl.export.bench import atari_dqn, hopper_sized_sac
    from nnc4rl.export.closed_loop import calibrate_held_out, play
    from nnc4rl.export.integer import calibrate
    from nnc4rl.export.verify import record_observations

    _, sac = hopper_sized_sac(sparsity)
    art = artifact_from_sb3(sac, bits=8, info={"env": "Hopper-v4", "seed": 0})
    sac_obs = play(load_policy(art), art, 1, record=True)["observations"][:8]
    out = [("SAC Hopper actor", art, calibrate_held_out(art, episodes=2), sac_obs)]
    _, dqn = atari_dqn(sparsity, "cnn")
    cnn = artifact_from_sb3(dqn, bits=8)
    _, env = make_envs("PongNoFrameskip-v4")
    frames = record_observations(dqn, env, n=16, every=5, random_prob=0.5)
    env.close()
    out.append(("Nature CNN (Pong)", cnn, calibrate(cnn, frames), frames[:2]))
    return out


def run(sparsities: list[float]) -> list[dict]:
    from nnc4rl.export import load_policy
    from nnc4rl.export.mcu import run_on_m4

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in sparsities:
            for name, art, int_art, obs in _nets(s):
                repeats = 20 if "SAC" in name else 2
                for label, a, integer, enc in (("int8", int_art, True, None),
                                               ("int8 dense", int_art, True, "dense"),
                                               ("fp32 act", art, False, None)):  # fmt: skip
                    work = Path(tmp) / f"{s}-{len(rows)}"
                    m4 = run_on_m4(a, obs, work, integer=integer, repeats=repeats, encoding=enc)
                    exact = None
                    if integer:
                        ref = load_policy(int_art, integer=True).accumulators(obs)
                        exact = bool(np.array_equal(m4.accumulators, ref))
                    rows.append({"net": name, "sparsity": s, "path": label,
                                 "size": m4.policy_size, "instructions": m4.instructions,
                                 "latency_us": m4.latency_us(MHZ), "bit_exact": exact})  # fmt: skip
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = [f"Cortex-M4F (QEMU mps2-an386), policy object sizes in bytes; latency at {MHZ:.0f} MHz "
             "assumes 1 instruction/cycle",
             f"{'net':20} {'spars':>5} {'path':>10} {'text':>8} {'data':>6} {'bss':>7} "
             f"{'insn/inf':>10} {'us @168':>9} {'max Hz':>8} {'dense/sparse':>12} {'bit-exact':>9}"]  # fmt: skip
    dense = {
        (r["net"], r["sparsity"]): r["instructions"] for r in rows if r["path"] == "int8 dense"
    }
    for r in rows:
        sz = r["size"]
        ratio = (
            dense[(r["net"], r["sparsity"])] / r["instructions"] if r["path"] == "int8" else None
        )
        lines.append(
            f"{r['net']:20} {r['sparsity']:5.2f} {r['path']:>10} {sz['text']:8d} {sz['data']:6d} "
            f"{sz['bss']:7d} {r['instructions']:10.0f} {r['latency_us']:9.1f} "
            f"{1e6 / r['latency_us']:8.0f} {'' if ratio is None else f'{ratio:.2f}x':>12} "
            f"{'' if r['bit_exact'] is None else str(r['bit_exact']):>9}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from nnc4rl.export.mcu import missing_tools

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.9, 0.98])
    parser.add_argument("--json", help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    why = missing_tools()
    if why:
        print(f"bench_mcu: skipped: {why}")
        return 0
    warnings.filterwarnings("ignore", message=".*out of date.*")
    rows = run(args.sparsities)
    print(format_rows(rows))
    for r in rows:
        if r["path"] == "int8" and r["sparsity"] == 0.98:
            sz, target = r["size"], ((8, 2) if "SAC" in r["net"] else (256, 64))
            ok = sz["flash"] <= target[0] * 1024 and sz["ram"] <= target[1] * 1024
            print(f"target {r['net']} at 98 %: flash {sz['flash']} B <= {target[0]} KB, RAM "
                  f"{sz['ram']} B <= {target[1]} KB: {ok}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark the exported C policies on a Cortex-M4F instruction set (arm-none-eabi-gcc, QEMU).

For a Hopper-sized SAC actor (11 -> 256 -> 256 -> 3) and the Nature CNN (Pong, 4 x 84 x 84
uint8 frames), pruned (Erdos-Renyi) and int8-quantized, and the shipped trained HalfCheetah actor
of the ``mini`` study at the same sparsity (seed 0, when ``data/runs/mini`` has one), built with ``-mcpu=cortex-m4 -mthumb
-mfloat-abi=hard -mfpu=fpv4-sp-d16 -Os`` and run under ``qemu-system-arm -M mps2-an386``:
text/data/bss of the policy (arm-none-eabi-size), instructions per inference (QEMU ``-icount``,
read through SysTick and calibrated on a loop of known length in the same image) and the implied
latency at 168 MHz (one instruction per cycle), a cycle estimate (the exact QEMU trace of one
inference weighted by the Cortex-M4 TRM's cycle counts: :mod:`nnc4rl.export.cycles`; not for
nets above ``TRACE_LIMIT`` instructions), for the full-integer and the fp32-activation
paths, for the integer path with dead units removed (``int8 -dead``,
:mod:`nnc4rl.export.dead_units`) and for the same network compiled with every layer dense (the
DSP dense kernel for fully-connected layers, the im2col one for convs: sparsity is measured
against a fast dense code, not only against PyTorch); ``insn/MAC`` is instructions per
multiply-accumulate done (the non-zeros; every weight for ``int8 dense``). The integer outputs
(``-dead`` included) are checked bit for bit against the host's numpy reference of the
unmodified network. All numbers come from one run.
Usage: ``python benchmarks/bench_mcu.py [--sparsities 0.9 0.95 0.98 0.99] [--opt -O2] [--json out.json]``.
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
RUNS = Path(__file__).resolve().parents[1] / "data" / "runs" / "mini"
TRACE_LIMIT = 5e6  # instructions per inference up to which the cycle estimate is traced


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
    # a shipped trained actor of the mini study at this sparsity (seed 0), when there is one
    from nnc4rl.export import artifact_from_path

    for run_dir in sorted(RUNS.glob(f"sac-HalfCheetah-v4-mlp-s{sparsity:.2f}-q8-*-seed0-*"))[:1]:
        trained = artifact_from_path(run_dir)
        obs = play(load_policy(trained), trained, 1, record=True, max_steps=8)["observations"]
        out.append(("SAC HalfCheetah mini", trained,
                    calibrate_held_out(trained, episodes=1), obs))  # fmt: skip
    _, dqn = atari_dqn(sparsity, "cnn")
    cnn = artifact_from_sb3(dqn, bits=8)
    _, env = make_envs("PongNoFrameskip-v4")
    frames = record_observations(dqn, env, n=16, every=5, random_prob=0.5)
    env.close()
    out.append(("Nature CNN (Pong)", cnn, calibrate(cnn, frames), frames[:2]))
    return out


def nnz_macs(art) -> int:
    """Non-zero multiply-accumulates per inference (a conv's weights once per output position)."""
    total = 0
    for op, s_out in zip(art.ops, art.activation_shapes()[1:], strict=True):
        if op["op"] in ("linear", "conv2d"):
            total += art.layers[op["layer"]].nnz * (int(np.prod(s_out[1:])) or 1)
    return total


def run(sparsities: list[float], opt: str = "-Os") -> list[dict]:
    from nnc4rl.export import load_policy
    from nnc4rl.export.dead_units import remove_dead_units
    from nnc4rl.export.mcu import estimate_cycles, run_on_m4

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in sparsities:
            for name, art, int_art, obs in _nets(s):
                repeats = 20 if "SAC" in name else 2
                small = remove_dead_units(int_art)[0]
                for label, a, integer, enc in (("int8", int_art, True, None),
                                               ("int8 -dead", small, True, None),
                                               ("int8 dense", int_art, True, "dense"),
                                               ("fp32 act", art, False, None)):  # fmt: skip
                    work = Path(tmp) / f"{s}-{len(rows)}"
                    m4 = run_on_m4(a, obs, work, integer=integer, repeats=repeats, encoding=enc,
                                   opt=opt)  # fmt: skip
                    exact = None
                    if integer:
                        ref = load_policy(int_art, integer=True).accumulators(obs)
                        exact = bool(np.array_equal(m4.accumulators, ref))
                    cycles = None  # the trace of a slow dense net would take gigabytes
                    if m4.instructions <= TRACE_LIMIT:
                        cycles = estimate_cycles(a, obs, work / "trace", integer=integer,
                                                 encoding=enc, opt=opt).cycles  # fmt: skip
                    # the dense kernel multiplies every weight; the others the non-zeros
                    n_macs = nnz_macs(_densified(a) if enc == "dense" else a)
                    rows.append({"net": name, "sparsity": s, "path": label, "opt": opt,
                                 "size": m4.policy_size, "instructions": m4.instructions,
                                 "macs": n_macs, "cycles": cycles,
                                 "latency_us": m4.latency_us(MHZ),
                                 "bit_exact": exact})  # fmt: skip
    return rows


def _densified(art):
    """``art`` with every weight counted (the MACs the dense kernel does)."""
    import copy

    out = copy.deepcopy(art)
    for layer in out.layers:
        layer.codes = np.ones_like(layer.codes)
    return out


def format_rows(rows: list[dict]) -> str:
    lines = [f"Cortex-M4F (QEMU mps2-an386), policy object sizes in bytes; latency at {MHZ:.0f} MHz "
             "assumes 1 instruction/cycle; cycles: the exact trace weighted by the Cortex-M4 TRM "
             "(nnc4rl/export/cycles.py, no flash wait states), Hz (cyc) its rate",
             f"{'net':20} {'spars':>5} {'path':>10} {'text':>8} {'data':>6} {'bss':>7} "
             f"{'insn/inf':>10} {'us @168':>9} {'max Hz':>8} {'insn/MAC':>8} {'cycles':>10} "
             f"{'Hz (cyc)':>8} {'dense/sparse':>12} {'bit-exact':>9}"]  # fmt: skip
    dense = {
        (r["net"], r["sparsity"]): r["instructions"] for r in rows if r["path"] == "int8 dense"
    }
    for r in rows:
        sz = r["size"]
        ratio = (
            dense[(r["net"], r["sparsity"])] / r["instructions"]
            if r["path"] in ("int8", "int8 -dead") else None
        )  # fmt: skip
        lines.append(
            f"{r['net']:20} {r['sparsity']:5.2f} {r['path']:>10} {sz['text']:8d} {sz['data']:6d} "
            f"{sz['bss']:7d} {r['instructions']:10.0f} {r['latency_us']:9.1f} "
            f"{1e6 / r['latency_us']:8.0f} {r['instructions'] / r['macs']:8.2f} "
            + (
                f"{r['cycles']:10d} {MHZ * 1e6 / r['cycles']:8.0f} "
                if r["cycles"]
                else f"{'-':>10} {'-':>8} "
            )  # fmt: skip
            + f"{'' if ratio is None else f'{ratio:.2f}x':>12} "
            f"{'' if r['bit_exact'] is None else str(r['bit_exact']):>9}"
        )
    return "\n".join(lines)


# the targets at 98 % (issue "control rates on the MCU"): (net, path, what, limit, meaning)
RATE_TARGETS = [
    ("SAC Hopper actor", "int8 -dead", "instructions", MHZ * 1e6 / 20e3, ">= 20 kHz"),
    ("SAC Hopper actor", "int8 -dead", "cycles", MHZ * 1e6 / 10e3, ">= 10 kHz in modelled cycles"),
    ("Nature CNN (Pong)", "int8", "cycles", MHZ * 1e6 / 100, ">= 100 Hz in modelled cycles"),
]


def target_lines(rows: list[dict]) -> list[str]:
    """One line per target met or missed at 98 %: the rates, then flash and RAM."""
    lines = []
    at98 = {(r["net"], r["path"]): r for r in rows if r["sparsity"] == 0.98}
    for net, path, what, limit, meaning in RATE_TARGETS:
        if (r := at98.get((net, path))) and r[what]:
            lines.append(f"target {net} ({path}) at 98 %: {what} {r[what]:,.0f} <= {limit:,.0f} "
                         f"({meaning} at {MHZ:.0f} MHz): {r[what] <= limit}")  # fmt: skip
    for (net, path), r in at98.items():
        if path in ("int8", "int8 -dead"):
            sz, target = r["size"], ((8, 2) if "SAC" in net else (256, 64))
            ok = sz["flash"] <= target[0] * 1024 and sz["ram"] <= target[1] * 1024
            lines.append(f"target {net} ({path}) at 98 %: flash {sz['flash']} B <= {target[0]} KB, "
                         f"RAM {sz['ram']} B <= {target[1]} KB: {ok}")  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    from nnc4rl.export.mcu import missing_tools

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.9, 0.95, 0.98, 0.99])
    parser.add_argument("--json", help="also write the rows as JSON here")
    parser.add_argument("--opt", default="-Os", choices=["-Os", "-O2", "-O3"],
                        help="the policy's optimization level (default -Os)")  # fmt: skip
    args = parser.parse_args(argv)
    why = missing_tools()
    if why:
        print(f"bench_mcu: skipped: {why}")
        return 0
    warnings.filterwarnings("ignore", message=".*out of date.*")
    rows = run(args.sparsities, args.opt)
    print(format_rows(rows))
    for line in target_lines(rows):
        print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

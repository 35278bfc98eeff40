"""The Cortex-M4 cycle model (nnc4rl.export.cycles) on a hand-written QEMU trace."""

from __future__ import annotations

from nnc4rl.export.cycles import CYCLES, insn_cycles, trace_cycles

# Two TBs: a loop body of 4 instructions ending in a conditional branch, run twice (taken once,
# then falling through), and a pop that returns.
LOG = """----------------
IN: layer1
0x00000100:  f81e ab01  ldrb.w   sl, [lr], #1
0x00000104:  f910 a00a  ldrsb.w  sl, [r0, sl]
0x00000108:  fb1b 330a  smlabb   r3, fp, sl, r3
0x0000010c:  d1f8       bne      #0x100

Trace 0: 0x7f0 [00000000/00000100/00000110/ff000200] layer1
Trace 0: 0x7f0 [00000000/00000100/00000110/ff000200] layer1
----------------
IN: layer1
0x0000010e:  e8bd 8ff0  pop.w    {r4, r5, r6, r7, r8, r9, sl, fp, pc}

Trace 0: 0x7f4 [00000000/0000010e/00000110/ff000200] layer1
Trace 0: 0x7f8 [00000000/00000200/00000110/ff000200] other
"""


def test_trace_weights_by_the_cycle_table():
    t = trace_cycles(LOG.splitlines())
    body = CYCLES["load"] + CYCLES["load_pipelined"] + CYCLES["mul"] + CYCLES["branch_not_taken"]
    taken = CYCLES["branch_taken"] - CYCLES["branch_not_taken"]
    pop = 1 + 9  # 1 + N registers, + P when it loads the PC (taken: the next TB is elsewhere)
    assert t.instructions == 4 + 4 + 1  # the block at 0x200 was never disassembled: not counted
    assert t.taken == 2  # the bne once (0x100 follows 0x10c), the pop's return
    assert t.cycles == 2 * body + taken + pop + taken


def test_single_instructions():
    assert insn_cycles("ldr", "r0, [r1]", prev_mem=False)[0] == CYCLES["load"]
    assert insn_cycles("ldr", "r0, [r1]", prev_mem=True)[0] == CYCLES["load_pipelined"]
    assert insn_cycles("smlad", "r0, r1, r2, r3", prev_mem=False)[0] == CYCLES["mul"]
    assert insn_cycles("udiv", "r0, r1, r2", prev_mem=False)[0] == CYCLES["div"]
    assert insn_cycles("push", "{r4, r5, lr}", prev_mem=False)[0] == 4
    assert insn_cycles("vpush", "{s16-s19}", prev_mem=False)[0] == 5
    assert insn_cycles("bne.n", "#0x100", prev_mem=False)[2]
    assert insn_cycles("usat", "r3, #7, r3, asr #6", prev_mem=False)[0] == CYCLES["alu"]

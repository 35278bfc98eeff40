"""A Cortex-M4 cycle estimate from an exact instruction trace (QEMU ``-d in_asm,exec,nochain``).

QEMU counts instructions, not cycles. This module weights the exact trace of one inference with
the Cortex-M4 Technical Reference Manual's cycle counts (ARM DDI 0439B, "Cortex-M4 instruction
set summary", table 3-1), no flash wait states (a board at 168 MHz needs its flash accelerator /
cache to come close), so that a rate in *modelled cycles* can stand beside the instruction count.

The trace: with ``nochain`` QEMU logs every translation block (TB) it executes (``-d exec``) and
the disassembly of each TB once when it translates it (``-d in_asm``); a TB is a straight run of
instructions ending at a branch, so the two together give every executed instruction and whether
each TB's final branch was taken (the next TB does not start right after it). Instructions
skipped by an IT block are counted as executed (1 cycle, as the TRM gives for a failed
condition).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Cycles (TRM table 3-1; P, the pipeline refill of a taken branch, is 1-3: 2 is taken here).
CYCLES = {
    "alu": 1,  # data processing, shifts, extends, saturation, SXTB16, IT, NOP
    "mul": 1,  # MUL, MLA, SMULL, SMLAL, SMLABB, SMLAD, SMMUL, ...: single cycle on the M4
    "div": 7,  # SDIV / UDIV: 2-12 by the operands, the middle taken
    "load": 2,  # LDR / LDRB / LDRH / LDRSB / LDRSH (any addressing mode)
    "load_pipelined": 1,  # a load / store right after a load / store single pipelines
    "store": 1,  # STR*: 1, the write buffered (TRM: "STR ... 1" with neighbouring pipelining)
    "branch_not_taken": 1,
    "branch_taken": 3,  # 1 + P
    "fp": 1,  # VADD / VSUB / VMUL / VCVT / VMOV / VCMP / VMRS / VNEG / VABS
    "fp_mac": 3,  # VMLA / VMLS / VFMA / VNMLA ...
    "fp_div": 14,  # VDIV / VSQRT
}
# LDM / STM / PUSH / POP / VLDM / VPUSH / LDRD / STRD: 1 + N (registers); + P when PC is loaded.

_BRANCH = re.compile(r"^(b|bl|blx|bx|cbz|cbnz|tbb|tbh)(eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)?(\.[nw])?$")  # fmt: skip
_MUL = re.compile(r"^(mul|mla|mls|umull|smull|umlal|smlal|sm[lu]|smmul|smmla|smmls|smlad|smlsd|smuad|smusd|usad)")  # fmt: skip


def _n_regs(operands: str) -> int:
    """Registers in a ``{...}`` list (ranges like ``r4-r7`` / ``s16-s31`` counted in full)."""
    m = re.search(r"\{([^}]*)\}", operands)
    if not m:
        return 1
    n = 0
    for part in m.group(1).split(","):
        part = part.strip()
        if "-" in part:
            a, b = part.split("-")
            n += int(re.sub(r"\D", "", b)) - int(re.sub(r"\D", "", a)) + 1
        elif part:
            n += 1
    return n


def insn_cycles(mnemonic: str, operands: str, prev_mem: bool) -> tuple[int, bool, bool]:
    """``(cycles, is a single load/store, is a branch)`` of one instruction, its branch (if any)
    counted as not taken; ``prev_mem``: the previous instruction was a single load / store."""
    m = mnemonic.lower().split(".")[0]
    if _BRANCH.match(mnemonic.lower()):
        return CYCLES["branch_not_taken"], False, True
    if m.startswith(("ldm", "stm", "push", "pop", "vldm", "vstm", "vpush", "vpop")):
        pc = "pc" in operands and m.startswith(("ldm", "pop"))
        return 1 + _n_regs(operands), False, pc
    if m.startswith(("ldrd", "strd")):
        return 3, False, False
    if m.startswith(("vldr", "vstr")):
        return 2, False, False
    if m.startswith("ldr") or m.startswith("str"):
        if m.startswith("ldr") and operands.split(",")[0].strip() == "pc":
            return CYCLES["load"], False, True
        base = CYCLES["load"] if m.startswith("ldr") else CYCLES["store"]
        return (CYCLES["load_pipelined"] if prev_mem else base), True, False
    if m in ("sdiv", "udiv"):
        return CYCLES["div"], False, False
    if _MUL.match(m):
        return CYCLES["mul"], False, False
    if m.startswith(("vdiv", "vsqrt")):
        return CYCLES["fp_div"], False, False
    if m.startswith(("vmla", "vmls", "vfma", "vfms", "vnmla", "vnmls", "vfnma", "vfnms")):
        return CYCLES["fp_mac"], False, False
    if m.startswith("v"):
        return CYCLES["fp"], False, False
    if m in ("mov", "add") and operands.split(",")[0].strip() == "pc":
        return CYCLES["alu"], False, True
    return CYCLES["alu"], False, False


@dataclass
class Trace:
    """Totals of one traced run: instructions, modelled cycles, taken branches."""

    instructions: int
    cycles: int
    taken: int

    @property
    def cpi(self) -> float:
        return self.cycles / max(self.instructions, 1)


_IN = re.compile(r"^0x([0-9a-f]+):\s+([0-9a-f]{4}(?: [0-9a-f]{4})?)\s+(\S+)\s*(.*)$")
_EXEC = re.compile(r"^Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/")


def trace_cycles(log_lines) -> Trace:
    """Weight a QEMU ``-d in_asm,exec,nochain`` log (an iterable of lines) by :data:`CYCLES`."""
    blocks: dict[int, list[tuple[int, int, str, str]]] = {}
    current: list | None = None
    executed: list[int] = []
    for line in log_lines:
        if line.startswith("Trace "):
            m = _EXEC.match(line)
            if m:
                executed.append(int(m.group(1), 16))
            current = None
        elif line.startswith("IN:"):
            current = []
        elif current is not None and line.startswith("0x"):
            m = _IN.match(line.strip())
            if m:
                addr, enc = int(m.group(1), 16), m.group(2)
                if not current:
                    blocks[addr] = current
                current.append((addr, 2 * len(enc.split()), m.group(3), m.group(4)))
    # per TB: cycles with its final branch not taken, the fall-through address, branch or not
    summary: dict[int, tuple[int, int, int, bool]] = {}
    for pc, insns in blocks.items():
        cycles, prev_mem, is_branch = 0, False, False
        for _, _, mn, ops in insns:
            c, mem, is_branch = insn_cycles(mn, ops, prev_mem)
            cycles, prev_mem = cycles + c, mem
        last_addr, last_size = insns[-1][0], insns[-1][1]
        summary[pc] = (cycles, len(insns), last_addr + last_size, is_branch)
    total_i = total_c = taken = 0
    for k, pc in enumerate(executed):
        if pc not in summary:
            continue
        cycles, n, fall, is_branch = summary[pc]
        total_i += n
        total_c += cycles
        if is_branch and k + 1 < len(executed) and executed[k + 1] != fall:
            taken += 1
            total_c += CYCLES["branch_taken"] - CYCLES["branch_not_taken"]
    return Trace(total_i, total_c, taken)

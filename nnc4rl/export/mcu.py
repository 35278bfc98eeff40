"""Run an exported C policy on a Cortex-M4F instruction set: arm-none-eabi-gcc + QEMU.

The policy is built for a Cortex-M4F (``-mcpu=cortex-m4 -mthumb -mfloat-abi=hard
-mfpu=fpv4-sp-d16``, ``-Os`` unless asked otherwise; libm and libgcc from newlib) into a bare-metal image with a small
harness (vector table, semihosting output), and run under ``qemu-system-arm -M mps2-an386``
(a Cortex-M4F board). The harness runs the policy on recorded observations stored in flash and
prints its outputs (the int32 accumulators in the integer path), so they can be compared with the
host build, then times ``repeats`` inferences.

Instructions per inference: QEMU runs with ``-icount shift=0``, which advances the virtual clock
by exactly 1 ns per executed guest instruction; the SysTick timer (driven by that clock) is read
before and after the timed loop. Its tick, in instructions, is measured in the same image on a
loop of known length (2 instructions x 1e6 iterations), so the count does not rely on the board's
clock settings. This counts instructions, not cycles (QEMU does not model the M4 pipeline, flash
wait states or the DWT cycle counter); the latency at a clock ``f`` is reported as
instructions / f, i.e. one instruction per cycle.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nnc4rl.export.c_build import STRICT_FLAGS
from nnc4rl.export.c_export import DEFAULT_PREFIX, save_c
from nnc4rl.export.model import Artifact, ArtifactError

M4_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
OPT_LEVELS = ("-Os", "-O2", "-O3")
TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm")
CALIBRATION_INSNS = 2_000_000  # the harness's known loop: 1e6 x (subs, bne)

_START = r"""#include <stdint.h>
extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);
static int semi(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}
void Reset_Handler(void)
{
    uint32_t *s = &_sidata, *d = &_sdata;
    while (d < &_edata) *d++ = *s++;
    for (d = &_sbss; d < &_ebss;) *d++ = 0;
    *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20; /* CPACR: enable the FPU */
    __asm__ volatile("dsb\n isb");
    {
        uint32_t args[2] = {0x20026u, (uint32_t)main()};
        semi(0x20, args); /* SYS_EXIT_EXTENDED */
        semi(0x18, (void *)0x20026);
    }
    for (;;) {}
}
void Default_Handler(void) { semi(0x04, "fault\n"); semi(0x18, (void *)0x20023); for (;;) {} }
__attribute__((section(".isr_vector"), used)) void (*const vectors[16])(void) = {
    (void (*)(void))&_estack, Reset_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, 0, 0, 0, 0, Default_Handler, Default_Handler, 0,
    Default_Handler, Default_Handler};
void puts_semi(const char *s) { semi(0x04, s); }
"""

_LINK = r"""MEMORY { FLASH (rx) : ORIGIN = 0x00000000, LENGTH = 4M
         RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 4M }
ENTRY(Reset_Handler)
SECTIONS {
  .text : { KEEP(*(.isr_vector)) *(.text*) *(.rodata*) . = ALIGN(4); } > FLASH
  .ARM.exidx : { *(.ARM.exidx*) } > FLASH
  _sidata = LOADADDR(.data);
  .data : { _sdata = .; *(.data*) . = ALIGN(4); _edata = .; } > RAM AT > FLASH
  .bss (NOLOAD) : { _sbss = .; *(.bss*) *(COMMON) . = ALIGN(4); _ebss = .; } > RAM
  end = .; _end = .;
  _estack = ORIGIN(RAM) + LENGTH(RAM);
}
"""

_MAIN = r"""#include <stdint.h>
#include "{header}"
void puts_semi(const char *s);
#define SYST ((volatile uint32_t *)0xE000E010)
#define N_OBS {n}
#define REPEATS {repeats}
{obs_data}
static void put_hex(uint32_t v)
{{
    char b[10];
    int i;
    for (i = 0; i < 8; ++i) b[i] = "0123456789abcdef"[(v >> (28 - 4 * i)) & 15u];
    b[8] = ' ';
    b[9] = 0;
    puts_semi(b);
}}
static uint32_t bits(float f) {{ union {{ float f; uint32_t u; }} c; c.f = f; return c.u; }}
int main(void)
{{
    static float out[{n_out}], act[{n_act}];
    uint32_t t0, t1, i, j;
    SYST[1] = 0xFFFFFFu; SYST[2] = 0; SYST[0] = 5; /* SysTick: processor clock, free running */
    for (i = 0; i < N_OBS; ++i) {{
{per_obs}        puts_semi("\n");
    }}
    t0 = SYST[2];
    for (i = 0; i < REPEATS; ++i) {p}_forward(OBS[i % N_OBS], out);
    t1 = SYST[2];
    puts_semi("ticks "); put_hex((t0 - t1) & 0xFFFFFFu); puts_semi("\n");
    t0 = SYST[2];
    __asm__ volatile("ldr r0, =1000000\n1: subs r0, #1\n bne 1b\n" ::: "r0", "cc");
    t1 = SYST[2];
    puts_semi("calib "); put_hex((t0 - t1) & 0xFFFFFFu); puts_semi("\n");
    (void)j;
    return 0;
}}
"""


_TRACE_MAIN = r"""#include <stdint.h>
#include "{header}"
{obs_data}
int main(void)
{{
    static float out[{n_out}];
    int i;
    for (i = 0; i < {calls}; ++i) {p}_forward(OBS[0], out);
    return 0;
}}
"""


def missing_tools() -> str | None:
    """Why the Cortex-M4 check cannot run here (a missing tool), or ``None`` if it can."""
    absent = [t for t in TOOLS if shutil.which(t) is None]
    if absent:
        return (f"{', '.join(absent)} not installed (Debian: apt-get install gcc-arm-none-eabi "
                "libnewlib-arm-none-eabi qemu-system-arm)")  # fmt: skip
    return None


@dataclass
class McuRun:
    """Result of one QEMU run.

    :param outputs: float32 ``(N, n_outputs)`` from ``PREFIX_forward``.
    :param actions: float32 ``(N, action_size)`` from ``PREFIX_act``.
    :param accumulators: int32 ``(N, n_outputs)`` (integer path) or ``None``.
    :param policy_size: ``text``, ``data``, ``bss`` of the policy object (arm-none-eabi-size).
    :param instructions: instructions per inference (``PREFIX_forward``).
    """

    outputs: np.ndarray
    actions: np.ndarray
    accumulators: np.ndarray | None
    policy_size: dict[str, int]
    image_size: dict[str, int]
    instructions: float

    def latency_us(self, mhz: float = 168.0) -> float:
        """Latency at one instruction per cycle on a ``mhz`` MHz core."""
        return self.instructions / mhz


def _run(cmd: list[str], what: str, timeout: float | None = None) -> str:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ArtifactError(f"{what} timed out after {timeout} s") from None
    if res.returncode != 0:
        lines = (res.stderr or res.stdout).strip().splitlines()
        raise ArtifactError(f"{what} failed ({res.returncode}): {lines[0] if lines else ''}")
    return res.stdout


def _size(path: Path) -> dict[str, int]:
    out = _run(["arm-none-eabi-size", str(path)], "arm-none-eabi-size")
    text, data, bss = (int(t) for t in out.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss, "flash": text + data, "ram": data + bss}


def _obs_data(obs: np.ndarray, image: bool) -> str:
    if image:
        rows = [", ".join(str(int(v)) for v in row) for row in obs.reshape(len(obs), -1)]
        ctype = "uint8_t"
    else:
        rows = [", ".join(f"{float(v).hex()}f" for v in row)
                for row in obs.astype(np.float32).reshape(len(obs), -1)]  # fmt: skip
        ctype = "float"
    body = ",\n".join("    {" + r + "}" for r in rows)
    return f"static const {ctype} OBS[N_OBS][{obs[0].size}] = {{\n{body}\n}};"


def run_on_m4(
    art: Artifact, obs: np.ndarray, workdir: str | Path | None = None, integer: bool = False,
    prefix: str = DEFAULT_PREFIX, repeats: int = 20, timeout: float = 300,
    encoding: str | None = None, opt: str = "-Os",
) -> McuRun:  # fmt: skip
    """Export ``art`` to C, build it for the Cortex-M4F and run it under QEMU on ``obs``.

    :param obs: ``(N, *obs_env_shape)`` env observations (stored in the image's flash).
    :param repeats: timed inferences (cycling over ``obs``).
    :param encoding: force one storage encoding (``dense``: the dense code of the same net).
    :param opt: the policy's optimization level (``-Os``, ``-O2`` or ``-O3``; the harness is
        always ``-Os``).
    :raises ArtifactError: a tool is missing, a build fails (the policy is built with
        ``-std=c99 -Wall -Wextra -Wpedantic -Werror``) or QEMU fails.
    """
    if opt not in OPT_LEVELS:
        raise ArtifactError(f"opt={opt!r} is invalid: use one of {', '.join(OPT_LEVELS)}")
    why = missing_tools()
    if why:
        raise ArtifactError(why)
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory()
        workdir = tmp.name
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _build_and_run(art, obs, work, integer, prefix, repeats, timeout, encoding, opt)
    finally:
        if tmp is not None:
            tmp.cleanup()


def _qemu(work: Path, extra: list[str], timeout) -> str:
    return _run(["qemu-system-arm", "-M", "mps2-an386", "-display", "none", "-monitor", "none",
                 "-serial", "none", "-chardev", "stdio,id=semi", "-semihosting-config",
                 "enable=on,target=native,chardev=semi", *extra, "-kernel",
                 str(work / "fw.elf")],
                "qemu-system-arm", timeout)  # fmt: skip


def _link(work: Path, c_path: Path, opt: str) -> None:
    """Compile the policy (strict flags) and link it with ``main.c`` into ``fw.elf``."""
    (work / "start.c").write_text(_START)
    (work / "link.ld").write_text(_LINK)
    gcc = "arm-none-eabi-gcc"
    _run([gcc, *M4_FLAGS, opt, *STRICT_FLAGS, "-c", "-o", str(work / "policy.o"), str(c_path)],
         "arm-none-eabi-gcc (policy, -Werror)")  # fmt: skip
    _run([gcc, *M4_FLAGS, "-Os", "-std=gnu99", "-ffreestanding", "-nostartfiles", "-T",
          str(work / "link.ld"), "-o", str(work / "fw.elf"), str(work / "start.c"),
          str(work / "main.c"), str(work / "policy.o"), "-lm", "-lc", "-lgcc"],
         "arm-none-eabi-gcc (image)")  # fmt: skip


def estimate_cycles(
    art: Artifact, obs: np.ndarray, workdir: str | Path, integer: bool = False,
    prefix: str = DEFAULT_PREFIX, encoding: str | None = None, opt: str = "-Os",
    timeout: float = 600,
):  # fmt: skip
    """Modelled Cortex-M4 cycles of one ``PREFIX_forward`` on ``obs[0]``
    (:mod:`nnc4rl.export.cycles`): the exact QEMU trace of an image that runs it once, minus
    that of one that runs it twice, so start-up code cancels. Returns a
    :class:`nnc4rl.export.cycles.Trace` of the one inference.
    """
    from nnc4rl.export.cycles import Trace, trace_cycles

    why = missing_tools()
    if why:
        raise ArtifactError(why)
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    c_path, h_path = save_c(art, work / "policy.c", prefix, integer, encoding)
    obs = np.asarray(obs)[:1]
    traces = []
    for calls in (1, 2):
        (work / "main.c").write_text(_TRACE_MAIN.format(
            header=h_path.name, obs_data=_obs_data(obs, integer and art.image).replace(
                "N_OBS", "1"), n_out=art.n_outputs, calls=calls, p=prefix))  # fmt: skip
        _link(work, c_path, opt)
        log = work / f"trace{calls}.log"
        _qemu(work, ["-d", "in_asm,exec,nochain", "-D", str(log)], timeout)
        with open(log) as f:
            traces.append(trace_cycles(f))
        log.unlink()
    one, two = traces
    return Trace(two.instructions - one.instructions, two.cycles - one.cycles,
                 two.taken - one.taken)  # fmt: skip


def _build_and_run(art, obs, work: Path, integer, prefix, repeats, timeout, encoding, opt):
    c_path, h_path = save_c(art, work / "policy.c", prefix, integer, encoding)
    image = integer and art.image
    obs = np.asarray(obs)
    n_out, n_act = art.n_outputs, art.action_size
    per_obs = (
        f"        {prefix}_forward(OBS[i], out);\n"
        f"        for (j = 0; j < {n_out}; ++j) put_hex(bits(out[j]));\n"
        f"        {prefix}_act(OBS[i], act);\n"
        f"        for (j = 0; j < {n_act}; ++j) put_hex(bits(act[j]));\n"
    )
    if integer:
        per_obs += (f"        {{ int32_t acc[{n_out}]; {prefix}_accumulators(OBS[i], acc);\n"
                    f"          for (j = 0; j < {n_out}; ++j) put_hex((uint32_t)acc[j]); }}\n")  # fmt: skip
    (work / "main.c").write_text(_MAIN.format(
        header=h_path.name, n=len(obs), repeats=repeats, obs_data=_obs_data(obs, image),
        n_out=n_out, n_act=n_act, per_obs=per_obs, p=prefix))  # fmt: skip
    _link(work, c_path, opt)
    out = _qemu(work, ["-icount", "shift=0"], timeout)
    lines = out.strip().splitlines()
    if not lines or not lines[-1].startswith("calib"):
        raise ArtifactError(f"the M4 image did not finish: {out[-200:]!r}")
    ticks, calib = int(lines[-2].split()[1], 16), int(lines[-1].split()[1], 16)
    rows = [np.array([int(t, 16) for t in line.split()], np.uint32) for line in lines[:-2]]
    table = np.stack(rows)
    outputs = table[:, :n_out].view(np.float32)
    actions = table[:, n_out : n_out + n_act].view(np.float32)
    acc = table[:, n_out + n_act :].view(np.int32) if integer else None
    insns = ticks * (CALIBRATION_INSNS / calib) / repeats
    return McuRun(outputs, actions, acc, _size(work / "policy.o"), _size(work / "fw.elf"), insns)

"""Every command-line entry point answers bad input with one stderr line and exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PY = [sys.executable, "-m"]

CASES = {
    "train-bits": ([*PY, "nnc4rl.cli", "train", "--algo", "sac", "--env", "Hopper-v4", "--steps",
                    "10", "--bits", "12", "--out", "{tmp}/r"], "'12' is not an integer in 2..8"),
    "train-env": ([*PY, "nnc4rl.cli", "train", "--algo", "sac", "--env", "NoSuchEnv-v0",
                   "--steps", "10", "--out", "{tmp}/r"], "NoSuchEnv-v0"),
    "export-missing": ([*PY, "nnc4rl.cli", "export", "{tmp}/nosuch.npz", "--format", "c", "--out",
                        "{tmp}/p.c"], "does not exist"),
    "export-artifact": ([*PY, "nnc4rl.cli", "export", "{tmp}/junk.npz", "--format", "onnx",
                         "--out", "{tmp}/p.onnx"], "is not a valid nnc4rl-policy artifact"),
    "sweep-profile": ([*PY, "nnc4rl.cli", "sweep", "--profile", "nosuch", "--dry-run"],
                      "profile='nosuch' is unknown"),
    "report-profile": ([*PY, "nnc4rl.report", "nosuch"], "profile='nosuch' is unknown"),
    "report-readme": ([*PY, "nnc4rl.report", "mini", "--readme", "{tmp}/nosuch.md"],
                      "cannot be read"),
    "profiles": ([*PY, "nnc4rl.profiles", "nosuch"], "profile='nosuch' is unknown"),
    "notebooks": ([*PY, "nnc4rl.study.notebooks", "{tmp}/junk.npz"], "junk.npz"),
    "train-seed": ([*PY, "nnc4rl.cli", "train", "--algo", "sac", "--env", "Pendulum-v1",
                    "--steps", "10", "--seed", "-1", "--out", "{tmp}/r"],
                   "'-1' is not an integer in 0..4294967295"),
    "train-threads": ([*PY, "nnc4rl.cli", "train", "--algo", "sac", "--env", "Pendulum-v1",
                       "--steps", "10", "--threads", "99999999999", "--out", "{tmp}/r"],
                      "'99999999999' is not an integer in 1..1024"),
    "train-device": ([*PY, "nnc4rl.cli", "train", "--algo", "sac", "--env", "Pendulum-v1",
                      "--steps", "10", "--device", "cuda:abc", "--out", "{tmp}/r"],
                     "device='cuda:abc' is invalid: use cpu, cuda, cuda:N, mps or auto"),
    "train-device-mps": ([*PY, "nnc4rl.cli", "train", "--algo", "sac", "--env", "Pendulum-v1",
                          "--steps", "10", "--device", "mps", "--out", "{tmp}/r"],
                         "device='mps' is not available on this machine"),
    "train-batch-size": ([*PY, "nnc4rl.cli", "train", "--algo", "sac", "--env", "Pendulum-v1",
                          "--steps", "10", "--set", "batch_size=-64", "--out", "{tmp}/r"],
                         "hyperparameter batch_size=-64 is invalid: must be >= 1"),
    "train-unwritable-out": ([*PY, "nnc4rl.cli", "train", "--algo", "sac", "--env",
                              "Pendulum-v1", "--steps", "10", "--set", "learning_starts=5", "--out",
                              "/sys/nnc4rl-test/r"],
                             "cannot write or read '/sys/nnc4rl-test'"),
    "train-damaged-checkpoint": ([*PY, "nnc4rl.cli", "train", "--algo", "sac", "--env",
                                  "Pendulum-v1", "--steps", "10", "--set", "learning_starts=5",
                                  "--out", "{tmp}/r", "--resume"],
                                 "is not an nnc4rl checkpoint of this version"),
    "sweep-workers": ([*PY, "nnc4rl.cli", "sweep", "--profile", "smoke", "--dry-run",
                       "--workers", "99999999999999"],
                      "'99999999999999' is not an integer in 1..10000"),
    "sweep-time-limit": ([*PY, "nnc4rl.cli", "sweep", "--profile", "smoke", "--dry-run",
                          "--time-limit", "nan"], "'nan' is not a number > 0"),
    "sweep-binary-profile": ([*PY, "nnc4rl.cli", "sweep", "--profile", "{tmp}/binary.yml",
                              "--dry-run"], "is not UTF-8 text"),
    "profiles-duplicate-key": ([*PY, "nnc4rl.profiles", "{tmp}/dup.yml"], "key 'T' appears twice"),
    "profiles-overrides": ([*PY, "nnc4rl.profiles", "{tmp}/badset.yml"],
                           "profile 'badset', group 'g': unknown hyperparameter "
                           "'no_such_setting' for SAC"),
    "export-damaged-summary": ([*PY, "nnc4rl.cli", "export", "{tmp}/damaged", "--format", "c",
                                "--out", "{tmp}/p.c"], "summary.json' is unreadable"),
    "export-unsigned-model": ([*PY, "nnc4rl.cli", "export", "{tmp}/evil", "--format", "npz",
                               "--out", "{tmp}/p.npz"], "has no valid signature"),
    "report-outside-a-checkout": ([*PY, "nnc4rl.report", "mini"],
                                  "no nnc4rl checkout at or above"),
    "report-corrupt-store": ([*PY, "nnc4rl.report", "mini", "--readme", "{tmp}/README.md",
                              "--data", "{tmp}/data"], "junk is corrupt: run.json is missing"),
}  # fmt: skip
# cases run from a folder outside any checkout
OUTSIDE = {"report-outside-a-checkout"}

GROUP = """  - name: g
    figure: fig4
    algo: sac
    envs: [Pendulum-v1]
    archs: [mlp]
    sparsities: [0.5]
    quantize: true
    seeds: 1
    T: 40
"""


class Payload:
    """Unpickled, it writes the file ``marker``: proof that loading ran the file's code."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).write_text, ("payload ran",))


def _inputs(tmp: Path, case: str) -> None:
    """The bad files the cases name; each that unpickles would create ``tmp/ran``."""
    import base64
    import pickle
    import zipfile

    (tmp / "junk.npz").write_bytes(b"not a zip")
    (tmp / "binary.yml").write_bytes(bytes(range(256)) * 4)
    (tmp / "dup.yml").write_text("name: dup\ngroups:\n" + GROUP + "    T: 80\n")
    (tmp / "badset.yml").write_text("name: badset\ngroups:\n" + GROUP
                                    + "    overrides: {no_such_setting: 1}\n")  # fmt: skip
    (tmp / "damaged").mkdir()
    (tmp / "damaged" / "summary.json").write_bytes(b'{"quantized": tru\xff')
    # a model.zip as SB3 writes it, whose policy class is a pickle that runs code when loaded
    blob = base64.b64encode(pickle.dumps(Payload(str(tmp / "ran")))).decode()
    data = {"policy_class": {":type:": "<class 'abc.ABCMeta'>", ":serialized:": blob}}
    (tmp / "evil").mkdir()
    with zipfile.ZipFile(tmp / "evil" / "model.zip", "w") as z:
        z.writestr("data", json.dumps(data))
    if case == "train-damaged-checkpoint":  # a checkpoint of a run folder r, by a stranger
        (tmp / ".r.checkpoint").mkdir()
        (tmp / ".r.checkpoint" / "checkpoint.pkl").write_bytes(
            pickle.dumps(Payload(str(tmp / "ran")))
        )
    text = (ROOT / "README.md").read_text()
    (tmp / "README.md").write_text(text)
    (tmp / "data" / "runs" / "mini" / "junk").mkdir(parents=True)
    (tmp / "data" / "runs" / "mini" / "junk" / "summary.json").write_text("{}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_argument_is_one_line_and_exit_2(case, tmp_path):
    argv, message = CASES[case]
    _inputs(tmp_path, case)
    readme = (ROOT / "README.md").read_bytes()
    env = os.environ | {"PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    cwd = tmp_path if case in OUTSIDE else ROOT
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    err = _our_lines(done.stderr)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr and len(err.splitlines()) == 1, err
    assert message in err and "error:" in err, err
    assert not (tmp_path / "r").exists() and not list(tmp_path.glob("p.*"))
    assert not list(tmp_path.glob(".*partial*")) and not (tmp_path / "ran").exists()
    assert (ROOT / "README.md").read_bytes() == readme
    assert (tmp_path / "README.md").read_text() == readme.decode()


def _env() -> dict[str, str]:
    return os.environ | {"PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}


TRAIN = [*PY, "nnc4rl.cli", "train", "--algo", "sac", "--env", "Pendulum-v1", "--set",
         "learning_starts=5", "--set", "batch_size=8"]  # fmt: skip


def _our_lines(stderr: str) -> str:
    """stderr without gymnasium's warning that a -v4 MuJoCo id has a v5 (not our output)."""
    lines = stderr.strip().splitlines()
    return "\n".join(line for i, line in enumerate(lines) if "is out of date" not in line
                     and not (i and "is out of date" in lines[i - 1]))  # fmt: skip


def _one_line(done: subprocess.CompletedProcess, status: int, message: str) -> None:
    err = _our_lines(done.stderr)
    assert done.returncode == status, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr and len(err.splitlines()) == 1, err
    assert message in err, err


def test_a_run_folder_trained_by_another_process_is_refused(tmp_path):
    """Two ``train --resume`` of one run: the second is one line, and touches nothing."""
    from nnc4rl.runs.lock import RunLock, lock_path

    held = RunLock(lock_path(tmp_path, "r"))
    assert held.acquire()  # this test process plays the first train
    try:
        done = subprocess.run([*TRAIN, "--steps", "10", "--out", str(tmp_path / "r"), "--resume"],
                              cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)  # fmt: skip
    finally:
        held.release()
    _one_line(done, 2, "is being trained by another process (pid")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    """Writes past a file-size limit fail as on a full disk (EFBIG instead of ENOSPC)."""
    import resource
    import signal

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    done = subprocess.run([*TRAIN, "--steps", "10", "--out", str(tmp_path / "r")], cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=300,
                          preexec_fn=limit)  # fmt: skip
    _one_line(done, 2, "nnc4rl train: error: cannot write or read")
    assert "File too large" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _interrupt(argv: list[str], started, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``argv`` in its own process group and Ctrl-C it (SIGINT to the group, as a terminal
    does) once ``started()`` holds."""
    import signal
    import time

    def as_a_terminal_starts_it() -> None:
        # A shell without job control starts background commands (`cmd &`, so a CI script run
        # that way) with SIGINT ignored, and Python then keeps ignoring it: the run never sees
        # the Ctrl-C. A terminal starts programs with SIGINT at its default.
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.Popen(argv, cwd=ROOT, env=env or _env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=as_a_terminal_starts_it)  # fmt: skip
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not started():
        time.sleep(0.05)
    assert proc.poll() is None, "it finished before it could be interrupted"
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def test_ctrl_c_in_train_is_one_line_and_leaves_nothing_half_written(tmp_path):
    done = _interrupt([*TRAIN, "--steps", "50000", "--out", str(tmp_path / "r")],
                      lambda: any(tmp_path.glob(".r.partial-*")))  # fmt: skip
    _one_line(done, 130, "nnc4rl train: interrupted")
    assert not (tmp_path / "r").exists() and not list(tmp_path.glob(".r.partial-*"))


def test_ctrl_c_inside_exec_of_a_string_still_exits_130(tmp_path):
    """A Ctrl-C that lands in ``exec`` of source text (``dataclasses`` does that while torch
    imports lazily, mid-run) made ``python -m`` die by SIGINT (-2), not exit 130."""
    (tmp_path / "interrupted_in_exec.py").write_text(
        "import sys\n"
        "import nnc4rl.cli.train as train\n"
        "from nnc4rl.cli import main\n"
        "train._run_train = lambda args: exec('raise KeyboardInterrupt')\n"
        "argv = ['train', '--algo', 'sac', '--env', 'Pendulum-v1', '--steps', '9', '--out', 'r']\n"
        "sys.exit(main(argv))\n"
    )
    env = _env() | {"PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    done = subprocess.run([*PY, "interrupted_in_exec"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    _one_line(done, 130, "nnc4rl train: interrupted")


def test_ctrl_c_in_sweep_is_one_line_and_leaves_no_work_folder(tmp_path):
    import tempfile

    from test_sweep import write_tiny

    env_profiles = write_tiny(tmp_path / "p", (0.5,), T=40000, every=100000)
    root = tmp_path / "data" / "runs" / "tiny"
    argv = [*PY, "nnc4rl.cli", "sweep", "--profile", "tiny", "--workers", "1", "--data",
            str(tmp_path / "data"), "--no-progress"]  # fmt: skip
    done = _interrupt(argv, lambda: root.is_dir() and any(root.glob(".*.partial-*-work-*")),
                      _env() | {"NNC4RL_PROFILES": str(env_profiles)})  # fmt: skip
    _one_line(done, 130, "nnc4rl sweep: interrupted")
    left = [p.name for p in root.iterdir() if p.name[0] == "." and p.name != ".store-id"]
    assert left == [] and not [p for p in root.iterdir() if p.name[0] != "."]
    assert not list(Path(tempfile.gettempdir()).glob(".sac-Hopper-v4-mlp-s0.50-q8-T40000-*"))


def test_an_artifact_whose_obs_divide_is_text_is_one_line(tmp_path, capsys):
    from test_untrusted import read_npz, small_artifact, write_npz

    from nnc4rl.cli import main
    from nnc4rl.export import save_artifact

    save_artifact(small_artifact(), tmp_path / "good.npz")
    header, blob = read_npz(tmp_path / "good.npz")
    header["obs"]["divide"] = "255"
    write_npz(tmp_path / "bad.npz", header, blob)
    assert main(["export", str(tmp_path / "bad.npz"), "--format", "c", "--out",
                 str(tmp_path / "p.c")]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "obs.divide" in err and not (tmp_path / "p.c").exists()

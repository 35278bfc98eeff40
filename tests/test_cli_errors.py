"""Every command-line entry point answers bad input with one stderr line and exit status 2."""

from __future__ import annotations

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
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_argument_is_one_line_and_exit_2(case, tmp_path):
    argv, message = CASES[case]
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    env = os.environ | {"PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    err = done.stderr.strip()
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr and len(err.splitlines()) == 1, err
    assert message in err and "error:" in err, err
    assert not (tmp_path / "r").exists() and not list(tmp_path.glob("p.*"))

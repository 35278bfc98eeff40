"""The envs every layer plays: MuJoCo's warnings are Python warnings, shown once, and leave no
log file in the working folder."""

from __future__ import annotations

import subprocess
import sys


def test_mujoco_warnings_are_shown_once_and_write_no_log(tmp_path):
    # HalfCheetah's XML uses the deprecated `settotalmass`: one MuJoCo warning per env creation
    code = (
        "import gymnasium as gym\n"
        "from nnc4rl.core.envs import is_atari, make_envs\n"
        "for seed in range(3):\n"
        "    train, evaluation = make_envs('HalfCheetah-v4', seed)\n"
        "    train.close(); evaluation.close()\n"
        "assert not is_atari('HalfCheetah-v4')  # resolve's path: is_atari, then a probe env\n"
        "gym.make('HalfCheetah-v4').close()\n"
    )
    out = subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", code],
                         cwd=tmp_path, capture_output=True, text=True, check=True)  # fmt: skip
    lines = [line for line in out.stderr.splitlines() if "settotalmass" in line]
    assert len(lines) == 1 and "MujocoWarning: MuJoCo: compiler attribute" in lines[0], out.stderr
    assert "settotalmass" not in out.stdout
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()

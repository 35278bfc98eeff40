"""Runs that survive a kill, paired evaluation, and a quantized run equal to the unquantized one
up to T - end to end through `nnc4rl train` on real MuJoCo and ALE envs.

A run is killed with SIGKILL (no cleanup of any kind) right after the env step ``KILL_AT``, some
steps after its last checkpoint, then continued with ``--resume``: its ``summary.json`` (returns of
every episode, SHA-256 of every evaluated network, sizes) and ``evaluations.csv`` must equal those
of an uninterrupted run; only the wall time differs.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
# `nnc4rl train` that SIGKILLs itself once env step KILL_AT is reached (checked between rollouts,
# where checkpoints are taken): what a node loss or `kill -9` does, at a chosen moment.
KILLER = r"""
import os, signal, sys
from nnc4rl.runs import runner
from nnc4rl.cli import main
kill_at = int(os.environ["KILL_AT"])
due = runner._Run.checkpoint_if_due
def checkpoint_then_die(self, model):
    due(self, model)
    if model.num_timesteps >= kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
runner._Run.checkpoint_if_due = checkpoint_then_die
sys.exit(main(sys.argv[1:]))
"""

CASES = {
    # T = 300: pruning in [60, 240), QAT in [300, 360); checkpoints every 50 steps
    "sac": (["--algo", "sac", "--env", "Hopper-v4", "--steps", "300", "--sparsity", "0.9",
             "--set", "learning_starts=60", "--set", "eval_freq=100", "--set", "eval_episodes=2",
             "--set", "n_events=12"], 50, (175, 335)),
    # T = 160: pruning in [32, 128), QAT in [160, 192); train_freq 4 overshoots T to 160
    "dqn": (["--algo", "dqn", "--env", "PongNoFrameskip-v4", "--arch", "cnn", "--steps", "160",
             "--sparsity", "0.9", "--set", "learning_starts=40", "--set", "eval_freq=1000",
             "--set", "eval_episodes=1", "--set", "target_update_interval=40",
             "--set", "n_events=8", "--set", "ptq_bits=[8]"], 32, (101, 181)),
    # T = 320 in rollouts of 32: pruning in [64, 256), QAT in [320, 384); checkpoints between
    # rollouts, so every 32 steps
    "ppo": (["--algo", "ppo", "--env", "Pendulum-v1", "--steps", "320", "--sparsity", "0.9",
             "--set", "n_steps=32", "--set", "batch_size=32", "--set", "n_epochs=2",
             "--set", "eval_freq=100", "--set", "eval_episodes=2", "--set", "n_events=12"],
            32, (150, 350)),
    # TD3: actor_target mirrored; T = 300 as SAC's
    "td3": (["--algo", "td3", "--env", "Pendulum-v1", "--steps", "300", "--sparsity", "0.9",
             "--set", "learning_starts=60", "--set", "eval_freq=100", "--set", "eval_episodes=2",
             "--set", "n_events=12", "--set", "policy_kwargs.net_arch=[64, 64]"], 50, (175, 335)),
    # DDPG: TD3's deployed path without target smoothing; the same schedule
    "ddpg": (["--algo", "ddpg", "--env", "Pendulum-v1", "--steps", "300", "--sparsity", "0.9",
              "--set", "learning_starts=60", "--set", "eval_freq=100", "--set", "eval_episodes=2",
              "--set", "n_events=12", "--set", "policy_kwargs.net_arch=[64, 64]"], 50,
             (175, 335)),
    # A2C: rollouts of 5 steps (its RL Zoo n_steps), so the clock lands on every multiple of 5
    "a2c": (["--algo", "a2c", "--env", "Pendulum-v1", "--steps", "300", "--sparsity", "0.9",
             "--set", "eval_freq=100", "--set", "eval_episodes=2", "--set", "n_events=12"],
            25, (175, 335)),
    # sb3-contrib's TQC (the `contrib` extra): SAC's deployed path, quantile critics
    "tqc": (["--algo", "tqc", "--env", "Pendulum-v1", "--steps", "300", "--sparsity", "0.9",
             "--set", "learning_starts=60", "--set", "eval_freq=100", "--set", "eval_episodes=2",
             "--set", "n_events=12", "--set", "policy_kwargs.net_arch=[64, 64]",
             "--set", "policy_kwargs.n_quantiles=5"], 50, (175, 335)),
}  # fmt: skip


def _train(args: list[str], out: Path, *extra: str, kill_at: int | None = None) -> int:
    cmd = [str(BIN / "nnc4rl"), "train", *args, "--seed", "1", "--out", str(out), "--no-progress"]
    env = dict(os.environ)
    if kill_at is not None:
        script = out.parent / "killer.py"
        script.write_text(KILLER)
        cmd = [sys.executable, str(script), *cmd[1:]]
        env["KILL_AT"] = str(kill_at)
    proc = subprocess.run([*cmd, *extra], capture_output=True, text=True, env=env)
    if kill_at is None:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.returncode


def _summary(folder: Path) -> dict:
    s = json.loads((folder / "summary.json").read_text())
    s.pop("wall_time_s")  # the one number a resumed run cannot share
    return s


@pytest.fixture(scope="module", params=list(CASES))
def runs(request, tmp_path_factory):
    """An uninterrupted quantized run, its unquantized twin, and two killed + resumed runs."""
    args, every, kills = CASES[request.param]
    root = tmp_path_factory.mktemp(request.param)
    _train(args, root / "quantized", "--quantize")
    _train(args, root / "fp32")
    resumed = {}
    for kill_at in kills:
        out = root / f"killed-at-{kill_at}"
        ckpt = root / f".{out.name}.checkpoint"
        rc = _train(args, out, "--quantize", "--checkpoint-every", str(every), kill_at=kill_at)
        assert rc == -9 and not out.exists() and (ckpt / "checkpoint.pkl").is_file()
        _train(args, out, "--quantize", "--checkpoint-every", str(every), "--resume")
        assert not ckpt.exists()  # a finished run drops its checkpoint
        resumed[kill_at] = out
    return request.param, root, resumed


@pytest.mark.xdist_group("e2e")
def test_a_killed_run_resumes_with_exactly_the_same_numbers(runs):
    name, root, resumed = runs
    reference = _summary(root / "quantized")
    curve = (root / "quantized" / "evaluations.csv").read_text()
    for kill_at, out in resumed.items():
        assert _summary(out) == reference, f"{name} killed at step {kill_at}"
        assert (out / "evaluations.csv").read_text() == curve
    # the two kills fell in the pruning and in the QAT phase of the run
    phases = {p["step"]: p["phase"] for p in reference["eval"].values()}
    assert "qat" in phases.values()
    plan = reference["plan"]
    assert plan["T"] / 5 < min(resumed) < 4 * plan["T"] / 5 < plan["T"] < max(resumed)


@pytest.mark.xdist_group("e2e")
def test_fp32_point_of_a_quantized_run_is_the_unquantized_run(runs):
    name, root, _ = runs
    quantized, fp32 = _summary(root / "quantized"), _summary(root / "fp32")
    assert quantized["eval"]["finetune_end"] == fp32["eval"]["finetune_end"]  # bit for bit
    assert quantized["eval"]["qat_end"]["network_sha256"] != fp32["network_sha256"]
    assert quantized["eval"]["finetune_end"]["phase"] in ("finetune", "dense")


@pytest.mark.xdist_group("e2e")
def test_every_evaluation_plays_the_same_episodes(runs):
    """Paired evaluation: re-evaluating the saved network gives its reported returns exactly,
    whatever was evaluated before."""
    from nnc4rl.export import load_sb3_model
    from nnc4rl.runs.evaluation import evaluate_returns
    from nnc4rl.runs.spec import RunSpec

    name, root, _ = runs
    s = _summary(root / "quantized")
    model = load_sb3_model(root / "quantized" / "model.zip")
    spec = RunSpec(algo=s["algo"], env=s["env"], steps=s["T"], seed=s["seed"], arch=s["arch"])
    assert s["eval_seeds"] == [s["seed"] + 10_000 + i for i in range(len(s["eval_seeds"]))]
    for _ in range(2):  # twice: no evaluation depends on the one before
        assert (
            evaluate_returns(model, spec, len(s["eval_seeds"])) == s["eval"]["qat_end"]["returns"]
        )


def test_a_new_checkpoint_removes_the_partial_file_of_a_killed_writer(tmp_path):
    """A run killed while writing leaves a partial file as large as its replay buffer."""
    from stable_baselines3 import SAC

    from nnc4rl.runs.checkpoint import CHECKPOINT_FILE, load_checkpoint, save_checkpoint

    # pid 2**22 is above the largest pid Linux hands out: its writer is surely gone
    torn = tmp_path / f".{CHECKPOINT_FILE}.partial-4194304-x"
    torn.write_bytes(b"torn")
    assert load_checkpoint(tmp_path, None) is None  # a partial file is not a checkpoint
    model = SAC("MlpPolicy", "Hopper-v4", buffer_size=100, learning_starts=10)
    model.learn(20)
    save_checkpoint(tmp_path, model, {"step": 20})
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_FILE]

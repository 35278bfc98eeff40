"""Sweeps: resume after a kill (checkpoints), reuse, --force, failures, no orphan workers, both
executors, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from nnc4rl.cli import main
from nnc4rl.core.config import ConfigError
from nnc4rl.export import load_policy
from nnc4rl.runs.store import RunStore
from nnc4rl.runs.sweep import sweep, tasks_of

pytestmark = pytest.mark.xdist_group("sweep")  # process pools and Ray: keep them on one worker

# The smallest real runs: SAC Hopper-v4 at T = 40 (a profile written for the test).
TINY = """\
name: tiny
description: tiny SAC runs for the sweep tests
memory: little
groups:
  - name: mujoco
    figure: fig4
    algo: sac
    envs: [Hopper-v4]
    archs: [mlp]
    sparsities: {sparsities}
    quantize: true
    seeds: 1
    T: {T}
    keep_policy: true
    checkpoint_every: {every}
    overrides: {{learning_starts: 10, eval_freq: {eval_freq}, eval_episodes: {eval_episodes},
                n_events: 2, batch_size: 8}}
"""


def write_tiny(
    folder: Path, sparsities=(0.0, 0.5), T=40, every=20, extra="", eval_episodes=1
) -> Path:
    """Write the profile ``tiny`` into ``folder`` (found through ``$NNC4RL_PROFILES``)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = TINY.format(sparsities=list(sparsities), T=T, every=every, eval_freq=max(20, T // 2),
                       eval_episodes=eval_episodes)  # fmt: skip
    (folder / "tiny.yml").write_text(text + extra)
    return folder


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("NNC4RL_PROFILES", str(write_tiny(tmp_path / "profiles")))
    return tmp_path / "profiles"


def test_dry_run_paper_prints_count_and_estimate(capsys, tmp_path):
    assert main(["sweep", "--profile", "paper", "--dry-run", "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "profile paper: 760 runs, 0 finished, 760 to run; 3,936,000,000 env steps" in out
    assert "days" in out and "56 GB" in out
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--profile", "huge"], "profile='huge' is unknown: choose one of smoke, mini, paper"),
        (["--profile", "smoke", "--figure", "fig9"], "figure='fig9' is invalid"),
        (["--profile", "smoke", "--executor", "dask"], "executor='dask' is invalid"),
        (
            ["--profile", "smoke", "--env", "NoSuchEnv-v0"],
            "env='NoSuchEnv-v0' is not in profile smoke: choose from Hopper-v4, PongNoFrameskip-v4",
        ),
        (
            ["--profile", "smoke", "--figure", "fig4", "--env", "PongNoFrameskip-v4"],
            "env='PongNoFrameskip-v4' is not in profile smoke (fig4): choose from Hopper-v4",
        ),
        (
            ["--profile", "smoke", "--executor", "ray", "--address", "127.0.0.1:1"],
            "address='127.0.0.1:1' is unreachable",
        ),
        (["--profile", "smoke", "--address", "127.0.0.1:1"], "needs --executor ray"),
        (
            ["--profile", "smoke", "--executor", "ray", "--time-limit", "60"],
            "time_limit=60.0 needs --executor local",
        ),
    ],
)
def test_bad_input_is_one_line(capsys, tmp_path, argv, message):
    assert main(["sweep", *argv, "--dry-run", "--data", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert captured.out == "" and not (tmp_path / "runs").exists()


def test_envs_as_one_string_as_papermill_passes_it(tmp_path, capsys):
    result = sweep("smoke", envs="Hopper-v4", dry_run=True, data=tmp_path)
    # fig4 (3 sparsities x 2 seeds), PPO (3 sparsities x 1 seed) and the pilot (2 seeds) play
    # Hopper-v4
    assert result.total == 11 and "profile smoke: 11 runs" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="envs=7 is invalid"):
        sweep("smoke", envs=7, dry_run=True, data=tmp_path)


def test_dry_run_into_a_closed_pipe_exits_quietly(tmp_path):
    """``nnc4rl sweep --dry-run | head -1``: the reader is gone before the sweep writes."""
    read, write = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "nnc4rl.cli", "sweep", "--profile", "paper",
                             "--dry-run", "--data", str(tmp_path)], stdout=write,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    os.close(write)
    os.close(read)  # like head -1 having exited
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "Traceback" not in err and "BrokenPipe" not in err, err
    shell = subprocess.run(f"{sys.executable} -m nnc4rl.cli sweep --profile paper --dry-run "
                           f"--data {tmp_path} | head -1", shell=True, capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert (
        shell.stdout.startswith("profile paper: 760 runs") and len(shell.stdout.splitlines()) == 1
    )
    assert "Traceback" not in shell.stderr


def test_local_sweep_reuses_forces_and_repairs(tiny, tmp_path, capsys):
    first = sweep("tiny", data=tmp_path, workers=2, progress=False)
    assert (first.total, first.reused, len(first.ran), first.failed) == (2, 0, 2, {})
    store = RunStore(tmp_path / "runs" / "tiny")
    ids = sorted(t.run_id for t in tasks_of("tiny"))
    assert store.run_ids() == ids
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".")] == [".store-id"]
    for rid in ids:
        assert {p.name for p in store.path(rid).iterdir()} == {
            "run.json",
            "summary.json",
            "evaluations.csv",
            "policy.npz",
        }
        # the kept policy is the deployment artifact and acts like the trained actor
        policy = load_policy(store.path(rid) / "policy.npz")
        assert policy.predict(np.zeros(11, dtype=np.float32))[0].shape == (3,)
    mtime = (store.path(ids[0]) / "summary.json").stat().st_mtime
    again = sweep("tiny", data=tmp_path, workers=2, progress=False)
    assert (again.reused, again.ran) == (2, [])
    assert "2 runs, 2 finished, 0 to run" in capsys.readouterr().out
    (store.path(ids[1]) / "policy.npz").write_bytes(os.urandom(2000))  # damaged run folders
    (store.path(ids[0]) / "evaluations.csv").write_text("step,phase,mean,std,episodes\n20,de")
    repaired = sweep("tiny", data=tmp_path, workers=2, progress=False)
    assert sorted(repaired.ran) == ids
    out = capsys.readouterr().out
    assert f"{store.path(ids[1])} is corrupt: policy.npz does not load" in out
    assert f"{store.path(ids[0])} is corrupt: evaluations.csv is truncated" in out
    assert all(store.status(rid) == ("done", "") for rid in ids)
    forced = sweep("tiny", data=tmp_path, workers=1, progress=False, force=True)
    assert len(forced.ran) == 2
    assert (store.path(ids[0]) / "summary.json").stat().st_mtime != mtime


def test_failed_run_does_not_stop_the_others(tmp_path, monkeypatch, capsys):
    bad = TINY.split("groups:\n")[1].format(sparsities=[0.5], T=40, every=20, eval_freq=20,
                                            eval_episodes=1)  # fmt: skip
    bad = bad.replace("name: mujoco", "name: bad").replace("n_events: 2", "target_entropy: x")
    folder = write_tiny(tmp_path / "profiles", sparsities=(0.5,), extra=bad)
    monkeypatch.setenv("NNC4RL_PROFILES", str(folder))
    result = sweep("tiny", data=tmp_path, workers=2, progress=False)
    assert len(result.ran) == 1 and len(result.failed) == 1
    out = capsys.readouterr().out
    assert "1 failed" in out and "FAILED" in out
    # said when it failed too, not only in the report after the last run
    assert out.index("  failed ") < out.index("1 run(s) trained")


def test_a_time_limit_starts_only_the_runs_that_fit(tiny, tmp_path, monkeypatch, capsys):
    """A run whose estimate does not fit in the time left is not started (so none is cut off
    half-way at a job's walltime); the next sweep trains it."""
    import nnc4rl.runs.sweep as sweep_module

    estimate = sweep_module.estimate_seconds
    monkeypatch.setattr(sweep_module, "estimate_seconds",
                        lambda t: 3600.0 if t.spec.sparsity else estimate(t))  # fmt: skip
    result = sweep("tiny", data=tmp_path, workers=1, progress=False, time_limit=30)
    assert [r.split("-s")[1][:4] for r in result.ran] == ["0.00"]
    assert [r.split("-s")[1][:4] for r in result.not_started] == ["0.50"]
    assert "1 run(s) trained, 0 reused, 0 failed, 1 not started (past the time limit)" in (
        capsys.readouterr().out
    )
    assert RunStore(tmp_path / "runs" / "tiny").run_ids() == result.ran
    assert sweep("tiny", data=tmp_path, workers=1, progress=False).ran == result.not_started


PPO_TINY = """\
name: tinyppo
description: a PPO run whose T falls inside a rollout
memory: little
groups:
  - name: ppo
    figure: ppo
    algo: ppo
    envs: [Hopper-v4]
    archs: [mlp]
    sparsities: [0.5]
    quantize: true
    seeds: 1
    T: 300
    keep_policy: true
    overrides: {n_steps: 64, batch_size: 32, n_epochs: 1, eval_freq: 100, eval_episodes: 1,
                n_events: 2}
"""


def test_a_ppo_run_whose_t_falls_inside_a_rollout_is_stored(tmp_path, monkeypatch):
    """PPO finishes its 64-step rollout past T = 300 (at 320) and past 1.2 T (at 384): the run
    still has its periodic evaluation at 300 and is stored (it was refused as corrupt, "lacks
    the evaluation at step 300", so a whole PPO sweep ran and stored nothing)."""
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "tinyppo.yml").write_text(PPO_TINY)
    monkeypatch.setenv("NNC4RL_PROFILES", str(tmp_path / "profiles"))
    result = sweep("tinyppo", data=tmp_path, workers=1, progress=False)
    assert result.failed == {} and len(result.ran) == 1
    folder = RunStore(tmp_path / "runs" / "tinyppo").path(result.ran[0])
    summary = json.loads((folder / "summary.json").read_text())
    assert (summary["eval"]["finetune_end"]["step"], summary["total_steps"]) == (320, 384)
    rows = (folder / "evaluations.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [100, 200, 300, 320, 384]


def test_a_run_the_store_refuses_fails_alone(tiny, tmp_path, monkeypatch, capsys):
    """The store refusing one finished run (e.g. files a newer worker wrote) does not end the
    sweep: the other runs are stored, that one is reported as failed."""
    from nnc4rl.runs.schema import CorruptRunError

    commit = RunStore.commit

    def refuse_dense(self, rid, files, force=False):
        if "-s0.00-" in rid:
            raise CorruptRunError(f"run folder {rid} is corrupt: policy.npz does not load")
        return commit(self, rid, files, force)

    monkeypatch.setattr(RunStore, "commit", refuse_dense)
    result = sweep("tiny", data=tmp_path, workers=1, progress=False)
    assert len(result.ran) == 1 and len(result.failed) == 1
    (reason,) = result.failed.values()
    assert (
        reason.startswith("finished but not stored: run folder")
        and "FAILED" in capsys.readouterr().out
    )


def _sweep_argv(tmp_path: Path, workers: int = 1) -> list[str]:
    return [sys.executable, "-m", "nnc4rl.cli", "sweep", "--profile", "tiny", "--workers",
            str(workers), "--data", str(tmp_path / "data"), "--no-progress"]  # fmt: skip


def test_sweep_killed_halfway_resumes_without_recomputing(tmp_path):
    """A real ``nnc4rl sweep`` subprocess and its worker killed after the first run finishes."""
    env = os.environ | {"NNC4RL_PROFILES": str(write_tiny(tmp_path / "p", (0.0, 0.5, 0.9)))}
    root = tmp_path / "data" / "runs" / "tiny"
    proc = subprocess.Popen(_sweep_argv(tmp_path), start_new_session=True, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if root.is_dir() and any(not p.name.startswith(".") for p in root.iterdir()):
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker, mid-way through run 2
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in root.iterdir() if not p.name.startswith(".")}
    assert 1 <= len(finished) < 3
    done = subprocess.run(_sweep_argv(tmp_path), capture_output=True, text=True, timeout=900,
                          env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"3 runs, {len(finished)} finished, {3 - len(finished)} to run" in done.stdout
    after = {p.name: p.stat().st_mtime_ns for p in root.iterdir() if not p.name.startswith(".")}
    assert len(after) == 3 and all(after[k] == v for k, v in finished.items())


def test_kill_9_of_the_sweep_leaves_no_worker_and_keeps_the_checkpoint(tmp_path):
    """``kill -9`` of the sweep's main process alone: its worker dies too (no orphan blocked on a
    pipe), and the run's checkpoint lets the next sweep continue it."""
    env = os.environ | {"NNC4RL_PROFILES": str(write_tiny(tmp_path / "p", (0.5,), T=400,
                                                          every=40))}  # fmt: skip
    root = tmp_path / "data" / "runs" / "tiny"
    proc = subprocess.Popen(_sweep_argv(tmp_path), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    sweep_proc = psutil.Process(proc.pid)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:  # until the run has a checkpoint
        # the folder appears before its first file is renamed into it: wait for the file
        if root.is_dir() and any(p.name.endswith(".checkpoint") and (p / "checkpoint.pkl").is_file()
                                 for p in root.iterdir()):  # fmt: skip
            break
        time.sleep(0.1)
    children = sweep_proc.children(recursive=True)
    assert children and proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(children, timeout=60)
    assert alive == [], [p.cmdline() for p in alive]
    (ckpt,) = [p for p in root.iterdir() if p.name.endswith(".checkpoint")]
    assert ckpt.is_dir() and any(ckpt.iterdir())
    done = subprocess.run(_sweep_argv(tmp_path), capture_output=True, text=True, timeout=900,
                          env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "1 unfinished run(s) continue from their checkpoint" in done.stdout
    assert [p.name for p in root.iterdir() if p.name[0] == "." and p.name != ".store-id"] == []
    assert RunStore(root).status(ckpt.name[1 : -len(".checkpoint")]) == ("done", "")


def test_ray_executor_on_a_local_instance(tiny, tmp_path):
    pytest.importorskip("ray")
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = sweep("tiny", executor="ray", data=tmp_path, progress=False)
    finally:
        ray.shutdown()
    assert (len(result.ran), result.failed) == (2, {})
    store = RunStore(tmp_path / "runs" / "tiny")
    for rid in result.ran:
        meta = json.loads((store.path(rid) / "run.json").read_text())
        assert meta["run_id"] == rid and meta["profile"] == "tiny"


def test_runs_start_checkpointed_first_then_seed_by_seed(tmp_path, monkeypatch, capsys):
    """A sweep stopped part-way leaves every setting with about as many seeds."""
    import nnc4rl.runs.sweep as sweep_module
    from nnc4rl.core.trust import signature

    folder = write_tiny(tmp_path / "profiles", sparsities=(0.0, 0.5, 0.9))
    text = (folder / "tiny.yml").read_text().replace("seeds: 1", "seeds: 3")
    (folder / "tiny.yml").write_text(text)
    monkeypatch.setenv("NNC4RL_PROFILES", str(folder))
    waiting = [t for t in tasks_of("tiny") if t.spec.seed == 2 and t.spec.sparsity == 0.5][0]
    store = RunStore(tmp_path / "runs" / "tiny")
    store.checkpoint(waiting.run_id).mkdir(parents=True)
    # a checkpoint file with a valid signature (of an empty pickle: never loaded here)
    signed = b"nnc4rl-checkpoint 2 " + signature(b"").encode() + b"\n"
    (store.checkpoint(waiting.run_id) / "checkpoint.pkl").write_bytes(signed)
    # a folder holding only the partial file of a writer killed mid-way has nothing to resume
    torn = [t for t in tasks_of("tiny") if t.spec.seed == 1 and t.spec.sparsity == 0.9][0]
    store.checkpoint(torn.run_id).mkdir()
    # (pid 2**22 is above the largest pid Linux hands out, so its writer is surely gone)
    (store.checkpoint(torn.run_id) / ".checkpoint.pkl.partial-4194304-x").write_bytes(b"")
    started = []
    monkeypatch.setattr(sweep_module, "_local", lambda todo, *a: started.extend(todo))
    sweep("tiny", data=tmp_path, workers=1, progress=False)
    assert "  1 unfinished run(s) continue from their checkpoint" in capsys.readouterr().out
    assert started[0].run_id == waiting.run_id
    assert [t.spec.seed for t in started[1:]] == [0, 0, 0, 1, 1, 1, 2, 2]


def test_a_run_lock_is_taken_over_only_when_its_owner_is_dead(tmp_path):
    from nnc4rl.runs.lock import RunLock

    path = tmp_path / ".run.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from nnc4rl.runs.lock import RunLock; "
         f"assert RunLock({str(path)!r}).acquire(); print('held', flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True, env=os.environ | {"PYTHONPATH": str(Path.cwd())},
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        lock = RunLock(path)
        assert not lock.acquire()
        assert lock.owner().startswith(f"pid {holder.pid} on ")
    finally:
        holder.kill()
        holder.wait()
    assert path.exists() and lock.acquire()  # the owner died: its lock file is taken over
    assert lock.owner().startswith(f"pid {os.getpid()} on ")
    assert not RunLock(path).acquire()  # held by this process now
    lock.release()
    assert not path.exists()


def test_two_sweeps_on_one_store_never_train_a_run_twice(tmp_path):
    """Two real ``nnc4rl sweep`` processes started together on one store: each run is trained
    by exactly one of them (the other skips it while it trains, or reuses it)."""
    env = os.environ | {"NNC4RL_PROFILES": str(write_tiny(tmp_path / "p", (0.0, 0.5, 0.9)))}
    procs = [subprocess.Popen(_sweep_argv(tmp_path), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    trained = [int(o[0].split(" run(s) trained")[0].rsplit(": ", 1)[-1]) for o in outs]
    assert sum(trained) == 3, [o[0] for o in outs]
    root = tmp_path / "data" / "runs" / "tiny"
    store = RunStore(root)
    assert len(store.run_ids()) == 3 and all(store.status(r)[0] == "done" for r in store.run_ids())
    assert [p.name for p in root.iterdir() if p.name[0] == "." and p.name != ".store-id"] == []

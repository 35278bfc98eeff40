"""Sweeps: resume after a kill, reuse, --force, failures, both executors, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from nnc4rl.cli import main
from nnc4rl.export import load_policy
from nnc4rl.store import RunStore
from nnc4rl.sweep import sweep, tasks_of

pytestmark = pytest.mark.xdist_group("sweep")  # process pools and Ray: keep them on one worker

# The smallest real runs: SAC Hopper-v4 at T = 40 (tests patch the smoke profile's grid).
TINY = {
    "T": 40,
    "seeds": 1,
    "sparsities": (0.5,),
    "overrides": {
        "learning_starts": 10,
        "eval_freq": 20,
        "eval_episodes": 1,
        "n_events": 2,
        "batch_size": 8,
    },
}


@pytest.fixture
def tiny_profile(monkeypatch):
    """The smoke profile reduced to its SAC group with ``n`` tiny runs (sparsities)."""
    import nnc4rl.profiles as profiles

    real = profiles.load_profile

    def patched(name, sparsities=(0.0, 0.5)):
        prof = real(name)
        g = profiles.Group(**{**prof.groups[0].__dict__, **TINY, "sparsities": sparsities})
        return profiles.Profile(prof.name, prof.description, prof.memory, (g,))

    monkeypatch.setattr(profiles, "load_profile", patched)
    for mod in ("nnc4rl.sweep", "nnc4rl.results"):
        monkeypatch.setattr(f"{mod}.load_profile", patched)
    return patched


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
            ["--profile", "smoke", "--executor", "ray", "--address", "127.0.0.1:1"],
            "address='127.0.0.1:1' is unreachable",
        ),
        (["--profile", "smoke", "--address", "127.0.0.1:1"], "needs --executor ray"),
    ],
)
def test_bad_input_is_one_line(capsys, tmp_path, argv, message):
    assert main(["sweep", *argv, "--dry-run", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_local_sweep_reuses_forces_and_reports_failures(tiny_profile, tmp_path, capsys):
    first = sweep("smoke", data=tmp_path, workers=2, progress=False)
    assert (first.total, first.reused, len(first.ran), first.failed) == (2, 0, 2, {})
    store = RunStore(tmp_path / "runs" / "smoke")
    ids = sorted(t.run_id for t in tasks_of("smoke"))
    assert sorted(p.name for p in store.root.iterdir()) == ids
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
    again = sweep("smoke", data=tmp_path, workers=2, progress=False)
    assert (again.reused, again.ran) == (2, [])
    assert "2 runs, 2 finished, 0 to run" in capsys.readouterr().out
    (store.path(ids[1]) / "evaluations.csv").unlink()  # a damaged run folder
    repaired = sweep("smoke", data=tmp_path, workers=1, progress=False)
    assert repaired.ran == [ids[1]]
    out = capsys.readouterr().out
    assert (
        f"{store.path(ids[1])} is corrupt: evaluations.csv is missing; it will be recomputed" in out
    )
    forced = sweep("smoke", data=tmp_path, workers=1, progress=False, force=True)
    assert len(forced.ran) == 2
    assert (store.path(ids[0]) / "summary.json").stat().st_mtime != mtime


def test_failed_run_does_not_stop_the_others(tiny_profile, monkeypatch, tmp_path, capsys):
    import nnc4rl.profiles as profiles

    real = tiny_profile

    def with_bad(name):  # a target_entropy SAC rejects, in a second group
        prof = real(name, sparsities=(0.5,))
        g = prof.groups[0]
        bad = profiles.Group(**{**g.__dict__, "name": "bad", "overrides": {**g.overrides,
                                "target_entropy": "not-a-number"}})  # fmt: skip
        return profiles.Profile(prof.name, prof.description, prof.memory, (g, bad))

    monkeypatch.setattr("nnc4rl.sweep.load_profile", with_bad)
    result = sweep("smoke", data=tmp_path, workers=2, progress=False)
    assert len(result.ran) == 1 and len(result.failed) == 1
    out = capsys.readouterr().out
    assert "1 failed" in out and "FAILED" in out


def test_sweep_killed_halfway_resumes_without_recomputing(tmp_path):
    """A real ``nnc4rl sweep`` subprocess killed after its first run finishes."""
    code = f"""
import sys
import nnc4rl.profiles as p, nnc4rl.sweep as s
real = p.load_profile
def patched(name):
    prof = real(name)
    g = p.Group(**{{**prof.groups[0].__dict__, **{TINY!r}, "sparsities": (0.0, 0.5, 0.9)}})
    return p.Profile(prof.name, prof.description, prof.memory, (g,))
if __name__ == "__main__":  # the spawned workers import this file too
    s.load_profile = patched
    from nnc4rl.cli import main
    sys.exit(main(sys.argv[1:]))
"""
    script = tmp_path / "run_sweep.py"
    script.write_text(code)
    argv = [sys.executable, str(script), "sweep", "--profile", "smoke", "--workers", "1",
            "--data", str(tmp_path / "data"), "--no-progress"]  # fmt: skip
    root = tmp_path / "data" / "runs" / "smoke"
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if root.is_dir() and any(not p.name.startswith(".") for p in root.iterdir()):
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its worker, mid-way through run 2
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in root.iterdir() if not p.name.startswith(".")}
    assert 1 <= len(finished) < 3
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"3 runs, {len(finished)} finished, {3 - len(finished)} to run" in done.stdout
    after = {p.name: p.stat().st_mtime_ns for p in root.iterdir()}
    assert len(after) == 3 and all(after[k] == v for k, v in finished.items())


def test_ray_executor_on_a_local_instance(tiny_profile, tmp_path):
    pytest.importorskip("ray")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = sweep("smoke", executor="ray", data=tmp_path, progress=False)
    finally:
        ray.shutdown()
    assert (len(result.ran), result.failed) == (2, {})
    store = RunStore(tmp_path / "runs" / "smoke")
    for rid in result.ran:
        meta = json.loads((store.path(rid) / "run.json").read_text())
        assert meta["run_id"] == rid and meta["profile"] == "smoke"

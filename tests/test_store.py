"""Run store: ids, atomic commits, reuse, resume after a kill, --force, corrupt folders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nnc4rl.runner import RunSpec
from nnc4rl.store import CorruptRunError, RunStore, run_id, run_key

HYPER = {"sb3": {"batch_size": 8}, "compression": {"n_events": 2}, "evaluation": {}}


def _spec(**kw) -> RunSpec:
    base = dict(algo="sac", env="Pendulum-v1", steps=100, arch="mlp", sparsity=0.5, quantize=True)
    return RunSpec(**(base | kw))


def _files(rid: str) -> dict[str, bytes]:
    return {
        "run.json": json.dumps({"run_id": rid}).encode(),
        "summary.json": b"{}",
        "evaluations.csv": b"step,phase,mean,std,episodes\n",
    }


def test_run_id_is_stable_and_covers_what_changes_the_result():
    key = run_key(_spec(), HYPER)
    assert run_id(key) == run_id(run_key(_spec(), json.loads(json.dumps(HYPER))))
    assert run_id(key).startswith("sac-Pendulum-v1-mlp-s0.50-q8-T100-seed0-")
    others = [_spec(seed=1), _spec(sparsity=0.9), _spec(steps=200), _spec(quantize=False),
              _spec(bits=4), _spec(distribution="global")]  # fmt: skip
    ids = {run_id(run_key(s, HYPER)) for s in others}
    ids.add(run_id(run_key(_spec(), HYPER | {"sb3": {"batch_size": 16}})))
    assert len(ids) == len(others) + 1 and run_id(key) not in ids
    # what does not change the result does not change the id
    assert run_id(run_key(_spec(threads=2, n_envs=1), HYPER)) == run_id(key)


def test_commit_is_atomic_and_reused(tmp_path):
    store = RunStore(tmp_path / "runs")
    assert store.status("r1") == ("missing", "")
    assert store.commit("r1", _files("r1"))
    assert store.status("r1") == ("done", "")
    assert not store.commit("r1", _files("r1"))  # a finished run is kept
    assert store.commit("r1", _files("r1") | {"extra.txt": b"x"}, force=True)  # --force replaces
    assert (store.path("r1") / "extra.txt").exists()
    assert [p.name for p in store.root.iterdir()] == ["r1"]  # no temporary folders left


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda d: (d / "summary.json").unlink(), "summary.json is missing"),
        (lambda d: (d / "run.json").write_text("{not json"), "invalid JSON"),
        (lambda d: (d / "run.json").write_text('{"run_id": "other"}'), "names another run"),
    ],
)
def test_corrupt_folder_is_reported_and_replaced(tmp_path, damage, reason):
    store = RunStore(tmp_path)
    store.commit("r1", _files("r1"))
    damage(store.path("r1"))
    state, message = store.status("r1")
    assert state == "corrupt" and reason in message and str(store.path("r1")) in message
    assert "\n" not in message
    with pytest.raises(CorruptRunError, match=reason):
        store.check("r1")
    assert store.commit("r1", _files("r1"))  # a corrupt folder is replaced
    assert store.status("r1") == ("done", "")


def test_partial_of_a_killed_writer_is_cleaned(tmp_path):
    store = RunStore(tmp_path)
    # a writer killed mid-way leaves only a hidden partial folder: never a finished run
    code = (
        "import os, sys, time, tempfile; "
        "d = tempfile.mkdtemp(prefix=f'.r1.partial-{os.getpid()}-', dir=sys.argv[1]); "
        "open(os.path.join(d, 'summary.json'), 'w').write('{}'); print(d, flush=True); "
        "time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True)  # fmt: skip
    partial = Path(proc.stdout.readline().strip())
    assert store.status("r1") == ("missing", "")
    assert store.clean_partials() == []  # the writer is alive: its folder is left alone
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.1)
    assert store.clean_partials() == [partial]
    assert not partial.exists()

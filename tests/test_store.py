"""Run store and run-folder schema: ids, atomic validated commits, permissions, every kind of
damaged folder named in one line and replaced, partial folders of killed writers."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nnc4rl.runs.fixtures import make_run_fixture, make_summary_fixture
from nnc4rl.runs.schema import CorruptRunError, point_bits, validate_summary, variant
from nnc4rl.runs.spec import RunSpec
from nnc4rl.runs.store import RunStore, run_id, run_key

HYPER = {"sb3": {"batch_size": 8}, "compression": {"n_events": 2}, "evaluation": {}}


def _spec(**kw) -> RunSpec:
    base = dict(algo="sac", env="Pendulum-v1", steps=100, arch="mlp", sparsity=0.5, quantize=True)
    return RunSpec(**(base | kw))


def _files(rid: str, **kw) -> dict[str, bytes]:
    return make_run_fixture(run_id=rid, **kw)


def test_run_id_is_stable_and_covers_what_changes_the_result():
    key = run_key(_spec(), HYPER)
    assert run_id(key) == run_id(run_key(_spec(), json.loads(json.dumps(HYPER))))
    assert run_id(key).startswith("sac-Pendulum-v1-mlp-s0.50-q8-T100-seed0-")
    others = [_spec(seed=1), _spec(sparsity=0.9), _spec(steps=200), _spec(quantize=False),
              _spec(bits=4), _spec(distribution="global"),
              _spec(quantize=False, extra_finetune=True)]  # fmt: skip
    ids = {run_id(run_key(s, HYPER)) for s in others}
    ids.add(run_id(run_key(_spec(), HYPER | {"sb3": {"batch_size": 16}})))
    assert len(ids) == len(others) + 1 and run_id(key) not in ids
    assert "-fp32-ft-" in run_id(run_key(_spec(quantize=False, extra_finetune=True), HYPER))
    # what does not change the result does not change the id
    assert run_id(run_key(_spec(threads=2, n_envs=1), HYPER)) == run_id(key)


def test_commit_is_atomic_validated_and_reused(tmp_path):
    store = RunStore(tmp_path / "runs")
    assert store.status("r1") == ("missing", "")
    assert store.commit("r1", _files("r1"))
    assert store.status("r1") == ("done", "")
    assert not store.commit("r1", _files("r1", seed=1))  # a finished run is kept
    assert json.loads((store.path("r1") / "summary.json").read_text())["seed"] == 0
    assert store.commit("r1", _files("r1", seed=1), force=True)  # --force replaces
    assert json.loads((store.path("r1") / "summary.json").read_text())["seed"] == 1
    assert [p.name for p in store.root.iterdir()] == ["r1"]  # no temporary folders left
    # files that do not make a finished run are refused and nothing is written
    bad = _files("r2") | {"summary.json": b"{}"}
    with pytest.raises(CorruptRunError, match="r2 is corrupt: summary lacks schema"):
        store.commit("r2", bad)
    assert [p.name for p in store.root.iterdir()] == ["r1"]


def test_finished_folders_have_normal_permissions(tmp_path):
    store = RunStore(tmp_path)
    store.commit("r1", _files("r1"))
    umask = os.umask(0)
    os.umask(umask)
    mode = stat.S_IMODE(store.path("r1").stat().st_mode)
    assert mode == 0o777 & ~umask and mode & 0o055 == 0o055 & ~umask  # not 0700
    for f in store.path("r1").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask


def _truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda d: (d / "summary.json").unlink(), "summary.json is missing"),
        (lambda d: (d / "run.json").write_text("{not json"), "run.json is invalid JSON"),
        (lambda d: (d / "summary.json").write_text("{}"), "summary lacks schema, algo, env"),
        (
            lambda d: (d / "run.json").write_text(
                json.dumps(json.loads((d / "run.json").read_text()) | {"run_id": "other"})
            ),
            "run.json names another run",
        ),  # fmt: skip
        (
            lambda d: (d / "summary.json").write_text(
                json.dumps(json.loads((d / "summary.json").read_text()) | {"schema": 1})
            ),
            "summary schema 1 is not 2",
        ),  # fmt: skip
        (
            lambda d: (d / "summary.json").write_text(
                json.dumps(json.loads((d / "summary.json").read_text()) | {"seed": "zero"})
            ),
            "summary.seed='zero' is not of type int",
        ),  # fmt: skip
        (lambda d: (d / "policy.npz").write_bytes(os.urandom(4096)), "policy.npz does not load"),
        (lambda d: _truncate(d / "evaluations.csv", 40), "evaluations.csv is truncated"),
        (
            lambda d: _truncate(
                d / "evaluations.csv", (d / "evaluations.csv").read_text().rindex("\n", 0, -1) + 1
            ),
            "evaluations.csv lacks the evaluation at step 120",
        ),  # fmt: skip
        (
            lambda d: (d / "evaluations.csv").write_text("step,mean\n1,2\n"),
            "evaluations.csv has columns 'step,mean'",
        ),  # fmt: skip
        (
            lambda d: (d / "evaluations.csv").write_text(
                "step,phase,mean,std,episodes\nten,dense,1,0,2\n"
            ),
            "line 2 is not step,phase",
        ),  # fmt: skip
    ],
)
def test_damaged_folder_is_named_in_one_line_and_replaced(tmp_path, damage, reason):
    store = RunStore(tmp_path)
    store.commit("r1", _files("r1"))
    damage(store.path("r1"))
    state, message = store.status("r1")
    assert state == "corrupt" and reason in message, message
    assert message.startswith(f"run folder {store.path('r1')} is corrupt: ")
    assert "\n" not in message
    with pytest.raises(CorruptRunError, match="is corrupt"):
        store.check("r1")
    assert store.commit("r1", _files("r1"))  # a corrupt folder is replaced
    assert store.status("r1") == ("done", "")


def test_schema_fixtures_and_points():
    validate_summary(make_summary_fixture())
    full = make_summary_fixture(quantized=False, extra_finetune=True, ptq_bits=(8, 4))
    validate_summary(full)
    assert set(full["eval"]) == {"finetune_end", "extra_finetune_end", "ptq8", "ptq4"}
    for drop, overrides in (("qat_end", {}), ("ptq4", {"ptq_bits": (8, 4)})):
        s = make_summary_fixture(**overrides)
        del s["eval"][drop]
        with pytest.raises(CorruptRunError, match=f"summary.eval lacks point\\(s\\) {drop}"):
            validate_summary(s)
    s = make_summary_fixture()
    s["eval"]["qat_end"]["returns"].pop()
    with pytest.raises(CorruptRunError, match="1 returns and 2 eval seeds for 2 episodes"):
        validate_summary(s)
    names = {(0.0, "finetune_end", 8): "dense", (0.9, "finetune_end", 8): "pruned",
             (0.0, "qat_end", 8): "quantized only", (0.9, "qat_end", 8): "pruned + quantized",
             (0.9, "qat_end", 4): "pruned + quantized (int4)",
             (0.0, "extra_finetune_end", 32): "dense, 1.2 T",
             (0.9, "extra_finetune_end", 32): "pruned, 1.2 T",
             (0.0, "ptq4", 8): "dense + PTQ int4", (0.9, "ptq8", 8): "pruned + PTQ int8"}  # fmt: skip
    assert {k: variant(*k) for k in names} == names
    assert [point_bits(p, 4) for p in ("finetune_end", "qat_end", "extra_finetune_end", "ptq8")] == [
        32, 4, 32, 8]  # fmt: skip


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
    store.checkpoint("r1").mkdir()  # a checkpoint is not a partial: the next sweep resumes it
    assert store.clean_partials() == [] and store.checkpoint("r1").is_dir()
    assert store.run_ids() == []

"""A damaged run folder is named, never read as finished: every reader and the sweep refuse it in
one line and the next sweep recomputes it. A stray empty folder is no run; a checkpoint that
cannot be resumed (damaged, or not written by this store) is dropped and the run restarts,
and nothing it holds is unpickled."""

from __future__ import annotations

import json
import pickle
import shutil
import tempfile
from pathlib import Path

import pytest

from nnc4rl.export import ArtifactError, load_artifact
from nnc4rl.runs.checkpoint import CHECKPOINT_FILE, CheckpointError, load_checkpoint
from nnc4rl.runs.fixtures import make_run_fixture
from nnc4rl.runs.schema import CorruptRunError, run_id, validate_run_folder
from nnc4rl.runs.store import RunStore
from nnc4rl.runs.sweep import sweep
from nnc4rl.study.closed_loop import closed_loop_table
from nnc4rl.study.results import load_curves, load_runs

pytestmark = pytest.mark.xdist_group("sweep")  # process pools: keep them on one worker

# Two tiny quantized SAC Hopper runs (seeds 0 and 1) that keep their policy.
PROFILE = """\
name: dmg
groups:
  - name: mujoco
    figure: fig4
    algo: sac
    envs: [Hopper-v4]
    archs: [mlp]
    sparsities: [0.5]
    quantize: true
    seeds: 2
    T: 40
    keep_policy: true
    checkpoint_every: 20
    overrides: {learning_starts: 10, eval_freq: 20, eval_episodes: 2, n_events: 2, batch_size: 8}
"""


class Payload:
    """A pickle that, when loaded, writes a marker file: proof that unpickling ran its code."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path(self.marker).write_text, ("payload ran",))


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A real store of the two runs, trained once; each test damages a copy."""
    root = tmp_path_factory.mktemp("damage")
    (root / "profiles").mkdir()
    (root / "profiles" / "dmg.yml").write_text(PROFILE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NNC4RL_PROFILES", str(root / "profiles"))
        result = sweep("dmg", data=root / "data", workers=1, progress=False)
    assert len(result.ran) == 2 and not result.failed
    return root


@pytest.fixture
def store(shipped, tmp_path, monkeypatch):
    monkeypatch.setenv("NNC4RL_PROFILES", str(shipped / "profiles"))
    shutil.copytree(shipped / "data", tmp_path / "data")
    return RunStore(tmp_path / "data" / "runs" / "dmg")


def _json_edit(path: Path, edit) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def _old_run(folder: Path) -> None:
    """A run written before run.json recorded its files' sha256 (the shipped data): only the
    contents are checked."""
    _json_edit(folder / "run.json", lambda m: m.pop("files"))


def _edit_returns(f: Path) -> None:
    _json_edit(f / "summary.json", lambda s: s["eval"]["qat_end"]["returns"].__setitem__(0, 1e6))


def _nan_returns(f: Path) -> None:
    text = (f / "summary.json").read_text()
    s = json.loads(text)
    s["eval"]["qat_end"]["returns"][0] = float("nan")
    (f / "summary.json").write_text(json.dumps(s))  # json writes NaN, and reads it back


def _seed(f: Path) -> None:
    _json_edit(f / "summary.json", lambda s: s.update(seed=5))


def _sparsity_in_key(f: Path) -> None:
    _json_edit(f / "run.json", lambda m: m["key"].update(sparsity=0.9))


def _sparsity_in_summary(f: Path) -> None:
    _json_edit(f / "summary.json", lambda s: s.update(target_sparsity=0.9))


def _delete_row(f: Path) -> None:
    lines = (f / "evaluations.csv").read_text().splitlines(keepends=True)
    (f / "evaluations.csv").write_text("".join(lines[:1] + lines[2:]))  # the first evaluation


def _nan_row(f: Path) -> None:
    lines = (f / "evaluations.csv").read_text().splitlines(keepends=True)
    step, phase, _, std, n = lines[1].strip().split(",")
    lines[1] = f"{step},{phase},nan,{std},{n}\n"
    (f / "evaluations.csv").write_text("".join(lines))


def _random_policy(f: Path) -> None:
    data = bytearray((f / "policy.npz").read_bytes())
    data[100:400] = bytes((i * 37 + 11) % 256 for i in range(300))  # inside the deflate data
    (f / "policy.npz").write_bytes(bytes(data))


def _delete_policy(f: Path) -> None:
    (f / "policy.npz").unlink()


# damage -> what the one line must say
DAMAGES = {
    "edited returns": (_edit_returns, "are not those of its returns"),
    "NaN returns": (_nan_returns, "non-finite"),
    "seed contradicts run.json": (_seed, "summary.seed is 5, run.json's key says 1"),
    "sparsity edited in run.json": (_sparsity_in_key, "run.json's key gives the id"),
    "sparsity contradicts run.json": (_sparsity_in_summary,
                                      "summary.target_sparsity is 0.9, run.json's key says 0.5"),
    "deleted evaluations.csv row": (_delete_row, "evaluations.csv lacks the evaluation at step 20"),
    "NaN evaluations.csv row": (_nan_row, "non-finite mean"),
    "random bytes over policy.npz": (_random_policy, "policy.npz does not load"),
    "deleted policy.npz": (_delete_policy, "policy.npz is missing"),
}  # fmt: skip


@pytest.mark.parametrize("recorded", [True, False], ids=["with sha256", "older run"])
@pytest.mark.parametrize("case", sorted(DAMAGES))
def test_a_damaged_folder_is_named_by_every_reader_and_the_sweep(store, case, recorded, capsys):
    damage, expected = DAMAGES[case]
    rid = store.run_ids()[1]  # seed 1
    if not recorded:
        _old_run(store.path(rid))
    assert store.status(rid, expect_policy=True) == ("done", "")
    damage(store.path(rid))
    state, reason = store.status(rid, expect_policy=True)
    assert state == "corrupt" and rid in reason and expected in reason, reason
    data = store.root.parent.parent
    readers = [lambda: load_runs("dmg", data=data), lambda: load_curves("dmg", data=data),
               lambda: closed_loop_table("dmg", data=data)]  # fmt: skip
    if case == "deleted policy.npz" and not recorded:
        readers = readers[2:]  # the summary tables need no policy; the integer table does
    for read in readers:
        with pytest.raises(CorruptRunError, match=rid) as err:
            read()
        assert "\n" not in str(err.value)
    result = sweep("dmg", data=data, dry_run=True, progress=False)
    out = capsys.readouterr().out
    assert result.reused == 1 and f"{rid} is corrupt" in out and "it will be recomputed" in out


def test_an_edit_only_the_recorded_sha256_sees_is_named(store):
    rid = store.run_ids()[0]
    _json_edit(store.path(rid) / "summary.json", lambda s: s.update(wall_time_s=1.0))
    state, reason = store.status(rid)
    assert state == "corrupt" and "summary.json is not the file written with the run" in reason
    _old_run(store.path(rid))  # an older run has no sha256 to tell: the edit is not seen
    assert store.status(rid) == ("done", "")


def test_the_next_sweep_recomputes_a_damaged_run(store, capsys):
    rid, other = store.run_ids()
    (store.path(rid) / "policy.npz").write_bytes(b"\x00" * 64)
    before = (store.path(other) / "summary.json").stat().st_mtime_ns
    result = sweep("dmg", data=store.root.parent.parent, workers=1, progress=False)
    assert result.ran == [rid] and result.reused == 1 and not result.failed
    assert store.status(rid, expect_policy=True) == ("done", "")
    assert (store.path(other) / "summary.json").stat().st_mtime_ns == before
    load_artifact(store.path(rid) / "policy.npz")


def test_random_bytes_in_an_artifact_are_one_artifact_error(store, tmp_path):
    good = (store.path(store.run_ids()[0]) / "policy.npz").read_bytes()
    for start in range(40, len(good) - 200, max(1, len(good) // 25)):
        data = bytearray(good)
        data[start : start + 150] = bytes((i * 53 + start) % 256 for i in range(150))
        (tmp_path / "p.npz").write_bytes(bytes(data))
        try:
            load_artifact(tmp_path / "p.npz")
        except ArtifactError as err:
            assert "\n" not in str(err) and "p.npz" in str(err)


def test_policies_swapped_between_seeds_are_named(store):
    a, b = (store.path(r) for r in store.run_ids())
    for folder in (a, b):
        _old_run(folder)
    pa, pb = (a / "policy.npz").read_bytes(), (b / "policy.npz").read_bytes()
    (a / "policy.npz").write_bytes(pb)
    (b / "policy.npz").write_bytes(pa)
    for folder in (a, b):
        with pytest.raises(CorruptRunError, match="policy.npz is another run's"):
            validate_run_folder(folder)


def test_a_stray_empty_folder_is_no_run(store, capsys):
    (store.root / "stray").mkdir()
    data = store.root.parent.parent
    assert load_runs("dmg", data=data)["run_id"].nunique() == 2
    assert len(closed_loop_table("dmg", data=data)) == 2
    assert "stray" not in store.run_ids()
    assert sweep("dmg", data=data, dry_run=True, progress=False).reused == 2
    # an empty folder under a run's own name is a missing run, trained by the next sweep
    rid = store.run_ids()[0]
    shutil.rmtree(store.path(rid))
    store.path(rid).mkdir()
    assert store.status(rid) == ("missing", "")
    assert load_runs("dmg", data=data)["run_id"].nunique() == 1


def test_a_damaged_checkpoint_is_dropped_and_the_run_restarts(store, tmp_path, capsys):
    rid = store.run_ids()[0]
    shutil.rmtree(store.path(rid))
    ckpt = store.checkpoint(rid)
    ckpt.mkdir()
    marker = tmp_path / "ran"
    (ckpt / CHECKPOINT_FILE).write_bytes(pickle.dumps(Payload(marker)))  # not written by nnc4rl
    data = store.root.parent.parent
    sweep("dmg", data=data, dry_run=True, progress=False)
    out = capsys.readouterr().out
    assert f"checkpoint {ckpt / CHECKPOINT_FILE} is not an nnc4rl checkpoint" in out
    assert "it is to be discarded and the run restarts" in out and (ckpt / CHECKPOINT_FILE).exists()
    result = sweep("dmg", data=data, workers=1, progress=False)
    assert result.ran == [rid] and not result.failed and not marker.exists()
    assert store.status(rid, expect_policy=True) == ("done", "") and not ckpt.exists()
    # a signed header in front of a stranger's pickle: the signature does not check
    ckpt.mkdir()
    (ckpt / CHECKPOINT_FILE).write_bytes(b"nnc4rl-checkpoint 2 " + b"0" * 64 + b"\n"
                                         + pickle.dumps(Payload(marker)))  # fmt: skip
    with pytest.raises(CheckpointError, match="signature does not check"):
        load_checkpoint(ckpt, env=None)
    assert not marker.exists()


def test_a_namespaced_env_id_gives_one_folder_name(tmp_path):
    files = make_run_fixture(env="ALE/Pong-v5")
    key = json.loads(files["run.json"])["key"]
    rid = run_id(key)
    assert "/" not in rid and rid.startswith("sac-ALE-Pong-v5-mlp-")
    store = RunStore(tmp_path / "runs")
    assert store.commit(rid, files)
    assert store.run_ids() == [rid] and store.path(rid).parent == store.root
    assert store.status(rid) == ("done", "")


def test_a_worker_leaves_no_work_folder_outside_the_store(store):
    rid = store.run_ids()[0]
    shutil.rmtree(store.path(rid))
    assert sweep("dmg", data=store.root.parent.parent, workers=1, progress=False).ran == [rid]
    assert not list(Path(tempfile.gettempdir()).glob(f".{rid}*"))
    assert [p.name for p in store.root.iterdir() if p.name[0] == "."] == [".store-id"]


def test_a_commit_another_sweep_made_first_is_counted_reused_not_trained(store, monkeypatch):
    """Two sweeps that both trained a run: the one whose commit finds the run stored already
    keeps that copy, and says so."""
    rid = store.run_ids()[0]
    shutil.rmtree(store.path(rid))
    commit = RunStore.commit

    def other_sweep_first(self, run, files, force=False):
        commit(self, run, files, force)  # the other sweep's copy lands first
        return commit(self, run, files, force)  # this sweep's: discarded

    monkeypatch.setattr(RunStore, "commit", other_sweep_first)
    result = sweep("dmg", data=store.root.parent.parent, workers=1, progress=False)
    assert result.ran == [] and result.reused == 2 and not result.failed
    assert store.status(rid, expect_policy=True) == ("done", "")

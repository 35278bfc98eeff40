"""Tidy tables read from the run store alone: variants, points, episodes, stale runs flagged,
damaged folders named, no gymnasium / SB3 / sweep import."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from nnc4rl.core.config import ConfigError
from nnc4rl.runs.fixtures import make_run_fixture, make_summary_fixture
from nnc4rl.runs.profiles import load_profile
from nnc4rl.runs.schema import CorruptRunError
from nnc4rl.runs.store import RunStore, run_id, run_key
from nnc4rl.study import results, stats


def smoke_run(sparsity: float, seed: int, fp32: float, q: float, **change) -> tuple[str, dict]:
    """A finished run of the smoke profile's SAC group, as the profile asks for it now (its id
    is the one the profile gives), with fp32 / int8 returns; ``change`` edits its key."""
    group = load_profile("smoke").group("mujoco")
    hyper = group.hyperparameters("mlp")
    cell = next(c for c in group.cells() if c["sparsity"] == sparsity and c["seed"] == 0)
    cell = cell | {"seed": seed} | change.pop("cell", {})
    hyper = change.pop("hyper", hyper)
    episodes = hyper["evaluation"]["eval_episodes"]
    summary = make_summary_fixture(
        target_sparsity=sparsity, seed=seed, T=cell["steps"], episodes=episodes,
        ptq_bits=tuple(hyper["evaluation"].get("ptq_bits", ())),
        returns={"finetune_end": [fp32 - 1, fp32 + 1], "qat_end": [q, q]}, hyperparameters=hyper,
    )  # fmt: skip
    rid = run_id(run_key(SimpleNamespace(**cell), hyper))
    return rid, make_run_fixture(summary, run_id=rid, **change)


@pytest.fixture
def store(tmp_path):
    st = RunStore(tmp_path / "runs" / "smoke")
    for s, seed in [(0.0, 0), (0.0, 1), (0.9, 0), (0.9, 1)]:
        st.commit(*smoke_run(s, seed, 10.0 + seed, 8.0 + seed))
    return st


def test_one_row_per_run_and_point_with_the_papers_variants(store, tmp_path):
    df = results.load_runs("smoke", data=tmp_path)
    assert list(df.columns) == results.RUN_COLUMNS
    points = 2 + len(
        load_profile("smoke").group("mujoco").hyperparameters("mlp")["evaluation"].get(
            "ptq_bits", [])
    )  # fmt: skip
    assert len(df) == 4 * points and df["current"].all() and (df["stale_reason"] == "").all()
    main = df[df["point"].isin(["finetune_end", "qat_end"])]
    counts = main.groupby("variant").size().to_dict()
    assert counts == {"dense": 2, "quantized only": 2, "pruned": 2, "pruned + quantized": 2}
    pq = df[df["variant"] == "pruned + quantized"]
    assert set(pq["step"]) == {720} and set(pq["eval_bits"]) == {8} and set(pq["nnz"]) == {100}
    pruned = df[df["variant"] == "pruned"]
    assert set(pruned["eval_bits"]) == {32} and list(pruned["return_mean"]) == [10.0, 11.0]
    assert pruned["nominal_ratio"].tolist() == pytest.approx([10.0, 10.0])  # fp32: 1 / (1 - 0.9)
    curves = results.load_curves("smoke", data=tmp_path)
    # per run: every eval_freq (150) steps below 1.2 T (720), and 720
    assert list(curves.columns) == results.CURVE_COLUMNS and len(curves) == 4 * 5
    eps = results.load_episodes("smoke", data=tmp_path)
    assert list(eps.columns) == results.EPISODE_COLUMNS and len(eps) == 4 * points * 2
    one = eps[(eps["sparsity"] == 0.9) & (eps["seed"] == 1) & (eps["point"] == "finetune_end")]
    assert one["return"].tolist() == [10.0, 12.0] and one["eval_seed"].tolist() == [10_001, 10_002]
    assert one["episode"].tolist() == [0, 1] and set(one["variant"]) == {"pruned"}
    # filters: an env id alone works, an env the profile lacks is one clear line
    assert len(results.load_runs("smoke", "fig4", "Hopper-v4", data=tmp_path)) == len(df)
    assert results.load_runs("smoke", "fig5", data=tmp_path).empty
    with pytest.raises(ConfigError, match="env='NoSuchEnv-v0' is not in profile smoke"):
        results.load_runs("smoke", envs=["NoSuchEnv-v0"], data=tmp_path)


def test_runs_the_profile_no_longer_asks_for_are_flagged_not_dropped(store, tmp_path):
    hyper = load_profile("smoke").group("mujoco").hyperparameters("mlp")
    changed = json.loads(json.dumps(hyper))
    changed["sb3"]["batch_size"] = 8
    for args, kw in [((0.5, 7, 1.0, 1.0), {}), ((0.5, 0, 2.0, 2.0), {"hyper": changed}),
                     ((0.5, 1, 3.0, 3.0), {"group": "gone"}),
                     ((0.5, 0, 4.0, 4.0), {"cell": {"steps": 300}})]:  # fmt: skip
        store.commit(*smoke_run(*args, **kw))
    df = results.load_runs("smoke", data=tmp_path)
    stale = df[~df["current"]].drop_duplicates("run_id").set_index("return_mean")["stale_reason"]
    assert stale.to_dict() == {
        1.0: "seed 7 is no longer in group 'mujoco' (0..1)",
        2.0: "hyperparameter sb3.batch_size is 8 in the run, 256 in group 'mujoco'",
        3.0: "group 'gone' is no longer in profile smoke",
        4.0: "T is 300 in the run, 600 in group 'mujoco'",
    }
    assert df.loc[~df["current"], "run_id"].nunique() == 4
    assert df.loc[df["current"], "run_id"].nunique() == 4
    curves = results.load_curves("smoke", data=tmp_path)
    # 5 rows per run at T = 600 (every 150 steps below 720, and 720); at T = 300: 150, 300, 360
    assert (~curves["current"]).sum() == 3 * 5 + 3


def test_reader_needs_neither_gymnasium_nor_sb3_nor_the_sweep(store, tmp_path):
    code = f"""
import sys
for name in ("gymnasium", "stable_baselines3", "nnc4rl.runs.sweep", "nnc4rl.runs.runner", "mujoco",
             "ale_py"):
    sys.modules[name] = None  # any import of them fails
from nnc4rl.study.results import load_curves, load_episodes, load_runs
print(len(load_runs("smoke", data={str(tmp_path)!r})), len(load_curves("smoke",
      data={str(tmp_path)!r})), len(load_episodes("smoke", data={str(tmp_path)!r})))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    runs, curves, episodes = map(int, done.stdout.split())
    assert runs >= 8 and curves == 4 * 5 and episodes == 2 * runs


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda d: (d / "summary.json").write_text("{"), "summary.json is invalid JSON"),
        (lambda d: (d / "summary.json").write_text("{}"), "summary lacks schema"),
        (
            lambda d: (d / "evaluations.csv").write_text("step,phase,mean,std,episodes\n60,"),
            "evaluations.csv is truncated",
        ),  # fmt: skip
    ],
)
def test_damaged_run_folder_is_named(store, tmp_path, damage, reason):
    rid = store.run_ids()[2]
    damage(store.path(rid))
    with pytest.raises(CorruptRunError, match=f"{rid} is corrupt: {reason}"):
        results.load_runs("smoke", data=tmp_path)


def test_summary_and_env_table(store, tmp_path):
    summary = results.summarize(results.load_runs("smoke", data=tmp_path))
    dense = summary[summary["variant"] == "dense"].iloc[0]
    assert dense["mean"] == 10.5 and dense["n_seeds"] == 2
    assert (dense["t95_low"], dense["t95_high"]) == pytest.approx(stats.t_interval([10.0, 11.0]))
    table = results.env_table(summary, "Hopper-v4", "mlp")
    assert list(table["sparsity"]) == [0.0, 0.9]
    assert table.loc[1, "pruned + quantized"] == 8.5 and table.loc[1, "nnz"] == 100
    assert list(summary.columns) == results.SUMMARY_COLUMNS


def test_a_figure_with_no_runs_yet_summarizes_to_an_empty_table(tmp_path):
    summary = results.summarize(results.load_runs("smoke", "fig5", data=tmp_path))
    assert summary.empty and list(summary.columns) == results.SUMMARY_COLUMNS


def test_hyperparameter_tables_read_the_profile():
    tables = results.hyperparameter_table("paper")
    assert sorted(tables) == [1, 2, 3]
    t1 = dict(zip(tables[1]["hyperparameter"], tables[1]["value"], strict=True))
    assert t1["T (env steps)"] == "1000000" and t1["compression.n_events"] == "600"
    t3 = dict(zip(tables[3]["hyperparameter"], tables[3]["value"], strict=True))
    assert t3["network"] == "impala-authors" and t3["compression.n_events"] == "300"
    assert results.table_numbers()[("fig6", "CrazyClimberNoFrameskip-v4", "impala-authors")] == 17

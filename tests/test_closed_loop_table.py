"""The integer policy's closed-loop return in the results tables: every stored run that keeps
its policy plays its paired evaluation episodes with the artifact and the full-integer policy."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from test_sweep import write_tiny

from nnc4rl.runs.schema import CorruptRunError
from nnc4rl.runs.store import RunStore
from nnc4rl.runs.sweep import sweep
from nnc4rl.study.closed_loop import (
    TABLE_COLUMNS,
    closed_loop_sentences,
    closed_loop_table,
    write_closed_loop_table,
)

pytestmark = pytest.mark.xdist_group("closed-loop-table")

# Two tiny quantized SAC Hopper runs that keep their policy: the sweep tests' profile.
PROFILE = "tiny"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("cl")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NNC4RL_PROFILES", str(write_tiny(root / "profiles", eval_episodes=2)))
        sweep(PROFILE, data=root / "data", workers=1, progress=False)
        yield root / "data"


def test_closed_loop_table_of_a_run_store(store, monkeypatch, tmp_path):
    monkeypatch.setenv("NNC4RL_PROFILES", str(store.parent / "profiles"))
    runs = RunStore(store / "runs" / PROFILE)
    ids = runs.run_ids()
    assert len(ids) == 2
    # a run of a group that keeps policies, without its policy, is damaged: named, not dropped
    (runs.path(ids[1]) / "policy.npz").unlink()
    with pytest.raises(CorruptRunError, match=f"{ids[1]} is corrupt: policy.npz is missing"):
        closed_loop_table(PROFILE, data=store)
    assert runs.status(ids[1], expect_policy=True)[0] == "corrupt"  # the sweep recomputes it
    shutil.rmtree(runs.path(ids[1]))
    table = closed_loop_table(PROFILE, data=store)
    assert list(table.columns) == TABLE_COLUMNS and table["run_id"].tolist() == [ids[0]]
    row = table.iloc[0]
    summary = json.loads((runs.path(ids[0]) / "summary.json").read_text())
    qat = summary["eval"]["qat_end"]["returns"]
    assert row["eval_seeds"] == " ".join(map(str, summary["eval_seeds"])) and row["episodes"] == 2
    assert row["trained_return"] == pytest.approx(np.mean(qat))
    # the weight-only artifact is the trained network's arithmetic: same returns, episode by
    # episode, up to float rounding (summary.json keeps returns to 1e-6)
    assert row["artifact_max_episode_diff"] <= 1e-4 * max(1.0, np.abs(qat).max())
    assert row["artifact_return"] == pytest.approx(row["trained_return"], rel=1e-5, abs=1e-5)
    assert row["integer_minus_trained"] == pytest.approx(row["integer_return"] - np.mean(qat))
    # int8 activations move the actions a little, not a lot (Hopper actions lie in [-1, 1])
    assert (
        0 < row["action_error_max"] < 0.05 and row["action_error_mean"] <= row["action_error_max"]
    )
    assert np.isnan(row["greedy_disagree"]) and row["observations"] > 0 and row["current"]
    # the table as the notebook writes it, and its sentence
    path = write_closed_loop_table(PROFILE, table, data=tmp_path)
    assert path == tmp_path / "tables" / PROFILE / "integer_closed_loop.csv"
    back = pd.read_csv(path)
    assert back["run_id"].tolist() == [ids[0]]
    assert back["integer_return"].iloc[0] == pytest.approx(row["integer_return"], rel=1e-5)
    (sentence,) = closed_loop_sentences(table)
    assert f"{row['integer_minus_trained']:+.2f}" in sentence and "seed 0" in sentence
    stale = table.assign(current=False)
    assert closed_loop_sentences(stale)[0].startswith("No current run")


def test_sentences_one_per_sparsity_with_per_seed_values():
    rows = [{"env": "Hopper-v4", "arch": "mlp", "algo": "sac", "sparsity": s, "seed": seed,
             "current": True, "trained_return": 100.0, "integer_minus_trained": d,
             "action_error_max": 0.01, "greedy_disagree": np.nan,
             "artifact_max_episode_diff": 0.5 + seed}
            for s, seed, d in [(0.5, 0, 1.0), (0.5, 1, -3.0), (0.9, 0, 2.0)]]  # fmt: skip
    first, second = closed_loop_sentences(pd.DataFrame(rows))
    assert "sparsity 0.50" in first and "-1.00 on average over 2" in first
    assert "seed 0: +1.00, seed 1: -3.00" in first and "sparsity 0.90" in second
    assert "moves an episode's return by up to 1.50" in first

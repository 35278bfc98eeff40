"""Tidy tables from the run store: variants, bootstrap intervals, supplementary tables."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from nnc4rl import results, stats
from nnc4rl.store import CorruptRunError, RunStore

SIZE = {"fp32_bytes": 1000, "compressed_bytes": 100, "nominal_ratio": 40.0, "real_ratio": 10.0}


def _run(rid: str, sparsity: float, seed: int, fp32_ret: float, q_ret: float) -> dict[str, bytes]:
    point = {"measured_sparsity": sparsity, "params": 100, "nnz": round(100 * (1 - sparsity))}
    summary = {
        "algo": "sac", "env": "Hopper-v4", "arch": "mlp", "seed": seed,
        "target_sparsity": sparsity, "quantized": True, "bits": 8, "T": 100,
        "wall_time_s": 1.0, "measured_sparsity": sparsity, "size": SIZE,
        "eval": {"finetune_end": {"step": 100, "mean": fp32_ret, "std": 0.0, "episodes": 2,
                                  "size": SIZE | {"nominal_ratio": 1 / (1 - sparsity)}, **point},
                 "qat_end": {"step": 120, "mean": q_ret, "std": 0.0, "episodes": 2,
                             "size": SIZE, **point}},
    }  # fmt: skip
    meta = {"run_id": rid, "figure": "fig4", "group": "mujoco",
            "key": {"algo": "sac", "env": "Hopper-v4", "arch": "mlp", "seed": seed,
                    "sparsity": sparsity, "quantize": True, "bits": 8, "T": 100}}  # fmt: skip
    curve = "step,phase,mean,std,episodes\n50,pruning,1.0,0.0,2\n100,finetune,2.0,0.0,2\n"
    return {"run.json": json.dumps(meta).encode(), "summary.json": json.dumps(summary).encode(),
            "evaluations.csv": curve.encode()}  # fmt: skip


@pytest.fixture
def store(tmp_path, monkeypatch):
    runs = {
        f"r{i}": (s, seed) for i, (s, seed) in enumerate([(0.0, 0), (0.0, 1), (0.9, 0), (0.9, 1)])
    }
    st = RunStore(tmp_path / "runs" / "smoke")
    for rid, (s, seed) in runs.items():
        st.commit(rid, _run(rid, s, seed, 10.0 + seed, 8.0 + seed))
    tasks = [SimpleNamespace(run_id=rid) for rid in [*runs, "not-trained"]]
    monkeypatch.setattr("nnc4rl.sweep.tasks_of", lambda *a, **k: tasks)
    return st


def test_one_row_per_run_and_phase_with_the_papers_variants(store, tmp_path):
    df = results.load_runs("smoke", data=tmp_path)
    assert len(df) == 8  # 4 runs x (T, 1.2 T); the untrained run is absent
    counts = df.groupby("variant").size().to_dict()
    assert counts == {"dense": 2, "quantized only": 2, "pruned": 2, "pruned + quantized": 2}
    pq = df[df["variant"] == "pruned + quantized"]
    assert set(pq["step"]) == {120} and set(pq["nominal_ratio"]) == {40.0}
    pruned = df[df["variant"] == "pruned"]
    assert np.allclose(pruned["nominal_ratio"], 10.0)  # fp32 at T: 1 / (1 - 0.9)
    curves = results.load_curves("smoke", data=tmp_path)
    assert len(curves) == 8 and {"run_id", "sparsity", "return_mean"} <= set(curves.columns)


def test_summary_and_env_table(store, tmp_path):
    summary = results.summarize(results.load_runs("smoke", data=tmp_path))
    dense = summary[summary["variant"] == "dense"].iloc[0]
    assert dense["mean"] == 10.5 and dense["n_seeds"] == 2
    assert (dense["t95_low"], dense["t95_high"]) == pytest.approx(stats.t_interval([10.0, 11.0]))
    table = results.env_table(summary, "Hopper-v4", "mlp")
    assert list(table["sparsity"]) == [0.0, 0.9]
    assert table.loc[1, "pruned + quantized"] == 8.5 and table.loc[1, "nnz"] == 10


def test_corrupt_run_folder_is_reported(store, tmp_path):
    (store.path("r2") / "summary.json").write_text("{")
    with pytest.raises(CorruptRunError, match=r"r2 is corrupt: invalid JSON"):
        results.load_runs("smoke", data=tmp_path)


def test_hyperparameter_tables_read_the_profile():
    tables = results.hyperparameter_table("paper")
    assert sorted(tables) == [1, 2, 3]
    t1 = dict(zip(tables[1]["hyperparameter"], tables[1]["value"], strict=True))
    assert t1["T (env steps)"] == "1000000" and t1["compression.n_events"] == "600"
    t3 = dict(zip(tables[3]["hyperparameter"], tables[3]["value"], strict=True))
    assert t3["network"] == "impala-authors" and t3["compression.n_events"] == "300"
    assert results.table_numbers()[("fig6", "CrazyClimberNoFrameskip-v4", "impala-authors")] == 17

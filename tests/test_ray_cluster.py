"""The Ray executor on a real multi-node cluster (``ray.cluster_utils.Cluster``: a head with no
CPUs and two worker nodes, all local): a worker node removed mid-sweep loses its running run,
Ray retries it on the other node, where it continues from its checkpoint in the (shared) store;
the sweep finishes every run and commits none twice."""

from __future__ import annotations

import threading
import time

import pytest
from test_sweep import write_tiny

from nnc4rl.runs.store import RunStore
from nnc4rl.runs.sweep import sweep, tasks_of

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("sweep")  # one Ray at a time; alone with the other sweeps


def test_a_node_lost_mid_sweep(tmp_path, monkeypatch):
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("NNC4RL_PROFILES", str(write_tiny(tmp_path / "p", (0.0, 0.5, 0.9),
                                                         T=300, every=30)))  # fmt: skip
    commits: list[str] = []
    real_commit = RunStore.commit

    def counting_commit(self, rid, files, force=False):
        commits.append(rid)
        return real_commit(self, rid, files, force)

    monkeypatch.setattr(RunStore, "commit", counting_commit)
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "include_dashboard": False, "_system_config": {
            "health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
            "health_check_failure_threshold": 3}},
    )  # fmt: skip
    try:
        doomed = cluster.add_node(num_cpus=1)
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        root = tmp_path / "runs" / "tiny"
        outcome: dict = {}
        thread = threading.Thread(target=lambda: outcome.update(
            result=sweep("tiny", executor="ray", data=tmp_path, progress=False)))  # fmt: skip
        thread.start()
        deadline = time.time() + 120
        while time.time() < deadline and thread.is_alive():  # both nodes are mid-run
            if root.is_dir() and sum(p.name.endswith(".checkpoint") for p in root.iterdir()) >= 2:
                break
            time.sleep(0.1)
        assert thread.is_alive() and not RunStore(root).run_ids(), "runs ended before the kill"
        cluster.remove_node(doomed, allow_graceful=False)
        thread.join(timeout=600)  # the lost node's run is retried: slow on a busy machine
        assert not thread.is_alive()
    finally:
        ray.shutdown()
        cluster.shutdown()
    result = outcome["result"]
    ids = sorted(t.run_id for t in tasks_of("tiny"))
    assert result.failed == {} and sorted(result.ran) == ids
    assert sorted(commits) == ids  # every run committed exactly once
    store = RunStore(root)
    assert store.run_ids() == ids and all(store.status(r) == ("done", "") for r in ids)
    assert [p.name for p in root.iterdir() if p.name[0] == "." and p.name != ".store-id"] == []

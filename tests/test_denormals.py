"""A run's gradient updates flush denormal floats to zero; its rollouts and evaluations do not
(nnc4rl.runs.runner, ``DenormalsFlushedInUpdates``), so a saved network replays its reported
returns in a process that never flushes."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3 import SAC

from nnc4rl.runs import evaluation
from nnc4rl.runs.runner import train
from nnc4rl.runs.spec import RunSpec

DENORMAL = np.float32(1e-39)  # below float32's smallest normal, 1.18e-38


def _flushes() -> bool:
    """Whether this thread's float arithmetic flushes denormals (torch sets MXCSR's FTZ/DAZ)."""
    return bool(DENORMAL * np.float32(1.0) == 0.0)


def test_updates_flush_denormals_and_evaluations_do_not(tmp_path, monkeypatch):
    seen: dict[str, set[bool]] = {"update": set(), "evaluation": set()}
    update, evaluate = SAC.train, evaluation.Evaluator.returns

    def watched_update(self, *args, **kwargs):
        seen["update"].add(_flushes())
        return update(self, *args, **kwargs)

    def watched_evaluate(self, model):
        seen["evaluation"].add(_flushes())
        return evaluate(self, model)

    monkeypatch.setattr(SAC, "train", watched_update)
    monkeypatch.setattr(evaluation.Evaluator, "returns", watched_evaluate)
    assert not _flushes()
    spec = RunSpec(algo="sac", env="Pendulum-v1", steps=200, sparsity=0.5,
                   overrides={"learning_starts": 50, "eval_freq": 100, "eval_episodes": 1,
                              "n_events": 4})  # fmt: skip
    train(spec, tmp_path / "run")
    assert seen == {"update": {True}, "evaluation": {False}}
    assert not _flushes()  # the process is left as it was


@pytest.mark.parametrize("flush", [False, True])
def test_the_probe_sees_the_flag(flush):
    """The probe above can fail: it reads the flag torch sets."""
    import torch

    torch.set_flush_denormal(flush)
    try:
        assert _flushes() == flush
    finally:
        torch.set_flush_denormal(False)

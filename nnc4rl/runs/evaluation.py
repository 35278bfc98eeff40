"""Paired deterministic evaluation of an SB3 model (:func:`nnc4rl.core.envs.evaluation_seeds`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from nnc4rl.core.envs import evaluation_seeds, make_envs
from nnc4rl.runs.spec import RunSpec, resolve


class Evaluator:
    """Paired deterministic evaluation on a separate env: every call plays the same episodes.

    :param eval_env: a VecEnv with one env (Monitor-wrapped, so Atari returns are whole games).
    :param seeds: the reset seed of each episode (:func:`evaluation_seeds`).
    """

    def __init__(self, eval_env, seeds: list[int]):
        self.env, self.seeds = eval_env, list(seeds)
        self.rows: list[dict[str, Any]] = []

    def returns(self, model) -> list[float]:
        """Undiscounted return of each episode, episode ``i`` reset with ``seeds[i]``."""
        from stable_baselines3.common.evaluation import evaluate_policy

        out = []
        for seed in self.seeds:
            self.env.seed(seed)  # used by the reset evaluate_policy starts with
            r, _ = evaluate_policy(
                model, self.env, 1, deterministic=True, return_episode_rewards=True, warn=False
            )
            out.append(float(r[0]))
        return out

    def evaluate(self, model, step: int, phase: str) -> dict[str, Any]:
        """Evaluate, keep a learning-curve row, and return it with the per-episode returns.

        :param phase: the phase that produced the evaluated network (its label in the curve).
        """
        returns = self.returns(model)
        row = self.row(step, phase, returns)
        self.rows.append(row)
        return row | {"returns": returns}

    @staticmethod
    def row(step: int, phase: str, returns: list[float]) -> dict[str, Any]:
        """The learning-curve row (:data:`nnc4rl.runs.schema.EVAL_COLUMNS`) of one evaluation."""
        return {"step": step, "phase": phase, "mean": float(np.mean(returns)),
                "std": float(np.std(returns)), "episodes": len(returns)}  # fmt: skip


def evaluate_returns(model, spec: RunSpec, episodes: int) -> list[float]:
    """Re-evaluate ``model`` on the paired evaluation episodes of a run of ``spec`` (e.g. a saved
    ``model.zip`` loaded again): gives that run's reported per-episode returns."""
    spec, _ = resolve(spec)
    env, eval_env = make_envs(spec.env, spec.seed)
    env.close()
    try:
        return Evaluator(eval_env, evaluation_seeds(spec.seed, episodes)).returns(model)
    finally:
        eval_env.close()

"""Equivalence checks of exported policies against the trained SB3 network.

The reference is the SB3 model loaded from ``model.zip``: its weights are the baked grid values,
so it computes exactly what the fake-quant network computed when it was evaluated in training.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


def record_observations(model, env, n: int, every: int = 1, random_prob: float = 0.25,
                        seed: int = 0) -> np.ndarray:  # fmt: skip
    """``n`` real observations ``(n, *obs_shape)`` from a one-env VecEnv driven by ``model``.

    Every ``every``-th step is kept; with probability ``random_prob`` a random action is taken,
    so the states go beyond the policy's own trajectory.
    """
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    obs, out, step = env.reset(), [], 0
    while len(out) < n:
        if step % every == 0:
            out.append(obs[0].copy())
        if rng.random() < random_prob:
            action = np.array([env.action_space.sample()])
        else:
            action, _ = model.predict(obs, deterministic=True)
        obs, _, _, _ = env.step(action)
        step += 1
    return np.stack(out)


def reference_outputs(model, obs: np.ndarray) -> np.ndarray:
    """Raw outputs of the SB3 network: SAC / TQC squashed actions ``tanh(mu)``, TD3 / DDPG
    ``mu`` (tanh'd), PPO / A2C the mean action or the logits, DQN Q-values."""
    import torch

    from nnc4rl.compress.algos import algo_of

    info, policy = algo_of(model), model.policy
    with torch.no_grad():
        x, _ = policy.obs_to_tensor(obs)
        if info.head == "squash":
            return policy.actor(x, deterministic=True).cpu().numpy()
        if info.head == "deterministic":
            return policy.actor(x).cpu().numpy()
        if info.head == "gaussian":
            features = policy.extract_features(x, policy.pi_features_extractor)
            latent = policy.mlp_extractor.forward_actor(features)
            return policy.action_net(latent).cpu().numpy()
        return policy.q_net(x).cpu().numpy()


def compare(model, policy, obs: np.ndarray) -> dict[str, Any]:
    """Agreement of ``policy`` with ``model`` on ``obs``.

    :returns: ``max_abs_action_diff`` (SAC, env units), ``argmax_agree`` (DQN, fraction),
        ``max_abs_output_diff`` (tanh'd actions / Q-values) and ``n``.
    """
    ref_actions, _ = model.predict(obs, deterministic=True)
    actions, _ = policy.predict(obs)
    out = {
        "n": len(obs),
        "max_abs_output_diff": float(
            np.abs(policy.outputs(obs) - reference_outputs(model, obs)).max()
        ),
    }
    if policy.artifact.head["kind"] == "argmax":
        out["argmax_agree"] = float(np.mean(np.asarray(actions) == ref_actions))
    else:
        out["max_abs_action_diff"] = float(np.abs(np.asarray(actions) - ref_actions).max())
    return out


def episode_returns(policy, make_env: Callable[[], Any], episodes: int) -> list[float]:
    """Deterministic returns of ``policy`` (anything with ``predict``) on a fresh env from
    ``make_env`` (SB3's ``evaluate_policy``, as in training)."""
    from stable_baselines3.common.evaluation import evaluate_policy

    env = make_env()
    try:
        returns, _ = evaluate_policy(
            policy, env, episodes, deterministic=True, return_episode_rewards=True, warn=False
        )
    finally:
        env.close()
    return [float(r) for r in returns]

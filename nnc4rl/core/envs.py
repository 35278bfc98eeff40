"""The environments every layer plays: building them, and the paired evaluation episodes.

*Paired evaluation.* Every evaluation plays the same episodes: episode ``i`` starts from a reset
with seed :func:`evaluation_seeds` ``(seed, n)[i]``, so a network's score does not depend on what
was evaluated before, and all points of a run, runs of the same seed and the exported policies
of a run compare paired (episode by episode).

*Held-out calibration.* The integer path's activation scales are calibrated on other episodes,
reset with :func:`calibration_seeds`, so a policy's closed-loop return is never scored on the
states it was calibrated on.

gymnasium, ale-py and SB3's env helpers are imported inside the functions: importing this module
costs nothing.
"""

from __future__ import annotations

import warnings

from nnc4rl.core.config import ConfigError

EVAL_SEED_OFFSET = 10_000
# Calibration episodes start 10 000 seeds above the evaluation's: the two sets of one run are
# disjoint for any run with fewer than 10 000 evaluation episodes.
CALIBRATION_SEED_OFFSET = 20_000


def is_atari(env_id: str) -> bool:
    """Whether ``env_id`` is a registered ALE (Atari) id; raises ``ConfigError`` if unknown."""
    import ale_py
    import gymnasium as gym

    gym.register_envs(ale_py)
    _route_mujoco_warnings()  # callers make the env next (e.g. a probe of its spaces)
    try:
        spec = gym.spec(env_id)
    except gym.error.Error:
        raise ConfigError(f"env={env_id!r} is not a registered gymnasium environment") from None
    return "ale_py" in str(spec.entry_point)


def evaluation_seeds(seed: int, episodes: int) -> list[int]:
    """Reset seed of each evaluation episode of a run of ``seed``: the same at every evaluation
    and for every run of that seed, so all evaluations are paired comparisons."""
    return [seed + EVAL_SEED_OFFSET + i for i in range(episodes)]


def calibration_seeds(seed: int, episodes: int) -> list[int]:
    """Reset seed of each episode the integer path of a run of ``seed`` is calibrated on:
    disjoint from :func:`evaluation_seeds` ``(seed, n)`` for every ``n < 10_000``."""
    return [seed + CALIBRATION_SEED_OFFSET + i for i in range(episodes)]


class MujocoWarning(UserWarning):
    """A warning of the MuJoCo library (e.g. HalfCheetah's deprecated ``settotalmass``)."""


def _route_mujoco_warnings() -> None:
    """Send MuJoCo's warnings through Python's :mod:`warnings` (shown once per message).

    MuJoCo's default handler prints every warning and appends it to ``MUJOCO_LOG.TXT`` in the
    working folder; HalfCheetah's XML triggers one at every env creation, so a notebook that
    plays 50 stored policies carried 300 copies and the work tree a stray log file.
    """
    import mujoco

    if mujoco.get_mju_user_warning() is None:
        mujoco.set_mju_user_warning(
            lambda msg: warnings.warn(f"MuJoCo: {msg}", MujocoWarning, stacklevel=1)
        )


def make_envs(env_id: str, seed: int = 0, n_envs: int = 1):
    """Training and evaluation VecEnvs of a run of ``seed`` on ``env_id``. Atari: the standard DQN
    preprocessing and 4-frame stack; its evaluation env plays whole games (no life-loss terminal)
    with unclipped rewards.

    :param n_envs: parallel training envs (the evaluation env is always one).
    """
    import ale_py
    import gymnasium as gym
    from stable_baselines3.common.env_util import make_atari_env, make_vec_env
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    _route_mujoco_warnings()
    if is_atari(env_id):
        train = VecFrameStack(make_atari_env(env_id, n_envs=n_envs, seed=seed), 4)
        evaluation = VecFrameStack(
            make_atari_env(
                env_id,
                n_envs=1,
                seed=seed + EVAL_SEED_OFFSET,
                wrapper_kwargs={"terminal_on_life_loss": False, "clip_reward": False},
            ),
            4,
        )
    else:
        train = make_vec_env(env_id, n_envs=n_envs, seed=seed)
        evaluation = make_vec_env(env_id, n_envs=1, seed=seed + EVAL_SEED_OFFSET)
    return train, evaluation

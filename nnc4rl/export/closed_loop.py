"""Closed-loop checks of an exported policy: the run's paired evaluation episodes.

Episode ``i`` of a run's evaluation resets the evaluation env with seed
:func:`evaluation_seeds` ``(seed, episodes)[i]`` (``seed + 10_000 + i``), so the trained network,
its weight-only export and its full-integer export all play the same episodes, and their returns
can be compared episode by episode. The integer path's activation scales are calibrated on
held-out episodes (reset seeds :func:`calibration_seeds`, disjoint from the evaluation's), so
its closed-loop return is not scored on its own calibration data. The table of every stored run's integer policy
(an analysis of the run store) is :mod:`nnc4rl.study.closed_loop`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnc4rl.core.envs import calibration_seeds, evaluation_seeds, make_envs
from nnc4rl.export.model import Artifact, ArtifactError

CALIBRATION_EPISODES = 3  # what `nnc4rl export --integer` calibrates on by default


def _env_and_seed(art: Artifact, env: str | None, seed: int | None) -> tuple[str, int]:
    env = env or art.info.get("env")
    if env is None:
        raise ArtifactError(
            "the env id is unknown (the source is not a run folder): give --env ENV_ID"
        )
    return env, int(seed if seed is not None else art.info.get("seed", 0))


def play(
    policy, art: Artifact, episodes: int, env: str | None = None, seed: int | None = None,
    record: bool = False, max_steps: int = 100_000, held_out: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Play the paired evaluation episodes with ``policy`` (anything with SB3's ``predict``).

    :param env: gymnasium id (default: the artifact's ``info.env``).
    :param seed: the run's seed (default: ``info.seed``, else 0).
    :param record: also return every observation seen, ``(N, *obs_env_shape)``.
    :param held_out: play the calibration episodes (:func:`calibration_seeds`) instead.
    :returns: ``returns`` and ``lengths`` per episode, ``seeds``, and ``observations``.
    """
    env, seed = _env_and_seed(art, env, seed)
    seeds = (calibration_seeds if held_out else evaluation_seeds)(seed, episodes)
    _, venv = make_envs(env, seed)
    returns, lengths, seen = [], [], []
    try:
        for s in seeds:
            venv.seed(s)
            obs, total, steps, done = venv.reset(), 0.0, 0, False
            while not done and steps < max_steps:
                if record:
                    seen.append(obs[0].copy())
                action, _ = policy.predict(obs, deterministic=True)
                obs, reward, dones, _ = venv.step(np.asarray(action).reshape(1, -1)
                                                  if art.continuous else np.asarray(action).reshape(1))  # fmt: skip
                total, steps, done = total + float(reward[0]), steps + 1, bool(dones[0])
            returns.append(total)
            lengths.append(steps)
    finally:
        venv.close()
    out = {"returns": returns, "lengths": lengths, "seeds": seeds, "env": env}
    if record:
        out["observations"] = np.stack(seen)
    return out


def calibrate_held_out(
    art: Artifact, episodes: int = CALIBRATION_EPISODES, env: str | None = None, seed: int | None = None,
    max_observations: int = 4096,
) -> Artifact:  # fmt: skip
    """Calibrate the integer path on observations of held-out episodes (reset seeds
    :func:`calibration_seeds`, disjoint from the evaluation's) played by the weight-only
    artifact (it computes what was trained).

    :param max_observations: an evenly spaced subset of at most this many is used.
    """
    from nnc4rl.export.inference import ArtifactPolicy
    from nnc4rl.export.integer import calibrate, check_integer_ops

    check_integer_ops(art)  # before playing any episode
    run = play(ArtifactPolicy(art), art, episodes, env, seed, record=True, held_out=True)
    obs = run["observations"]
    if len(obs) > max_observations:
        obs = obs[np.linspace(0, len(obs) - 1, max_observations).astype(int)]
    provenance = {"env": run["env"], "episodes": episodes, "seeds": run["seeds"],
                  "steps": int(sum(run["lengths"]))}  # fmt: skip
    return calibrate(art, obs, provenance)


def integer_vs_trained(
    art: Artifact, episodes: int = CALIBRATION_EPISODES, env: str | None = None, seed: int | None = None,
    calibration_episodes: int = CALIBRATION_EPISODES,
) -> dict[str, Any]:  # fmt: skip
    """Returns of the full-integer policy beside the trained network's on the same paired
    evaluation episodes, and the per-observation action error on the trained policy's states.

    The trained network is the weight-only artifact (the fake-quant network's arithmetic, equal
    to it up to float rounding). ``art`` is calibrated first unless it already is.

    :returns: ``trained`` and ``integer`` (per-episode returns), ``seeds``, ``action_error``
        (``max`` and ``mean`` |a_int - a_trained| over the observations, env units) and ``n``.
    """
    from nnc4rl.export.inference import ArtifactPolicy
    from nnc4rl.export.integer import IntegerPolicy

    if art.integer is None:
        art = calibrate_held_out(art, calibration_episodes, env, seed)
    trained = play(ArtifactPolicy(art), art, episodes, env, seed, record=True)
    integer = play(IntegerPolicy(art), art, episodes, env, seed)
    obs = trained.pop("observations")
    a_int, _ = IntegerPolicy(art).predict(obs)
    a_fp, _ = ArtifactPolicy(art).predict(obs)
    diff = np.abs(np.asarray(a_int, np.float64) - np.asarray(a_fp, np.float64))
    error = {"max": float(diff.max()), "mean": float(diff.mean())}
    if art.head["kind"] == "argmax":
        error = {"disagree": float(np.mean(diff > 0))}
    return {"trained": trained["returns"], "integer": integer["returns"], "seeds": trained["seeds"],
            "action_error": error, "n": len(obs)}  # fmt: skip

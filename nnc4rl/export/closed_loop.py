"""Closed-loop checks of an exported policy: the run's paired evaluation episodes.

Episode ``i`` of a run's evaluation resets the evaluation env with seed
:func:`evaluation_seeds` ``(seed, episodes)[i]`` (``seed + 10_000 + i``), so the trained network,
its weight-only export and its full-integer export all play the same episodes, and their returns
can be compared episode by episode. The same episodes supply the observations the integer
path's activation scales are calibrated on. :func:`closed_loop_table` plays them for every run
of a profile's store that keeps its ``policy.npz`` (the integer policy's return beside the
trained network's).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nnc4rl.export.model import Artifact, ArtifactError

if TYPE_CHECKING:  # pandas only for the results table, not for every export
    import pandas as pd


def evaluation_seeds(seed: int, episodes: int) -> list[int]:
    """Reset seeds of a run's paired evaluation episodes: the runner's own list."""
    from nnc4rl.runner import evaluation_seeds as runner_seeds

    return runner_seeds(seed, episodes)


def _spec(art: Artifact, env: str | None, seed: int | None):
    from nnc4rl.runner import RunSpec

    env = env or art.info.get("env")
    if env is None:
        raise ArtifactError(
            "the env id is unknown (the source is not a run folder): give --env ENV_ID"
        )
    seed = int(seed if seed is not None else art.info.get("seed", 0))
    return RunSpec(algo=art.algo, env=env, steps=1, seed=seed, arch=art.info.get("arch"))


def play(
    policy, art: Artifact, episodes: int, env: str | None = None, seed: int | None = None,
    record: bool = False, max_steps: int = 100_000,
) -> dict[str, Any]:  # fmt: skip
    """Play the paired evaluation episodes with ``policy`` (anything with SB3's ``predict``).

    :param env: gymnasium id (default: the artifact's ``info.env``).
    :param seed: the run's seed (default: ``info.seed``, else 0).
    :param record: also return every observation seen, ``(N, *obs_env_shape)``.
    :returns: ``returns`` and ``lengths`` per episode, ``seeds``, and ``observations``.
    """
    from nnc4rl.runner import make_envs

    spec = _spec(art, env, seed)
    seeds = evaluation_seeds(spec.seed, episodes)
    _, venv = make_envs(spec)
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
                                                  if art.algo == "sac" else np.asarray(action).reshape(1))  # fmt: skip
                total, steps, done = total + float(reward[0]), steps + 1, bool(dones[0])
            returns.append(total)
            lengths.append(steps)
    finally:
        venv.close()
    out = {"returns": returns, "lengths": lengths, "seeds": seeds, "env": spec.env}
    if record:
        out["observations"] = np.stack(seen)
    return out


def calibrate_on_evaluation(
    art: Artifact, episodes: int = 3, env: str | None = None, seed: int | None = None,
    max_observations: int = 4096,
) -> Artifact:  # fmt: skip
    """Calibrate the integer path on observations from the trained network's own paired
    evaluation episodes (the weight-only artifact plays them; it computes what was trained).

    :param max_observations: an evenly spaced subset of at most this many is used.
    """
    from nnc4rl.export.inference import ArtifactPolicy
    from nnc4rl.export.integer import calibrate

    run = play(ArtifactPolicy(art), art, episodes, env, seed, record=True)
    obs = run["observations"]
    if len(obs) > max_observations:
        obs = obs[np.linspace(0, len(obs) - 1, max_observations).astype(int)]
    provenance = {"env": run["env"], "episodes": episodes, "seeds": run["seeds"],
                  "steps": int(sum(run["lengths"]))}  # fmt: skip
    return calibrate(art, obs, provenance)


def integer_vs_trained(
    art: Artifact, episodes: int = 3, env: str | None = None, seed: int | None = None,
    calibration_episodes: int = 3,
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
        art = calibrate_on_evaluation(art, calibration_episodes, env, seed)
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


CALIBRATION_EPISODES = 3  # what `nnc4rl export --integer` calibrates on by default
TABLE_NAME = "integer_closed_loop.csv"
TABLE_COLUMNS = ["run_id", "algo", "env", "arch", "sparsity", "bits", "seed", "current",
                 "episodes", "eval_seeds", "trained_return", "artifact_return", "integer_return",
                 "integer_minus_trained", "artifact_max_episode_diff", "action_error_max",
                 "action_error_mean", "greedy_disagree", "observations",
                 "calibration_episodes"]  # fmt: skip


def closed_loop_row(
    folder: str | Path, episodes: list[float], seeds: list[int], env: str, seed: int,
    calibration_episodes: int = CALIBRATION_EPISODES,
) -> dict[str, Any]:  # fmt: skip
    """Play one stored run's paired evaluation episodes with its weight-only artifact and its
    full-integer policy (calibrated as the export does).

    :param folder: the run folder (its ``policy.npz`` is played).
    :param episodes: the trained network's per-episode returns at ``qat_end`` (summary.json).
    :param seeds: their reset seeds (``eval_seeds``); the artifact plays the same ones.
    :returns: the numeric columns of :data:`TABLE_COLUMNS` for this run.
    :raises ArtifactError: the seeds played are not the run's evaluation seeds.
    """
    from nnc4rl.export.codec import load_artifact

    art = load_artifact(Path(folder) / "policy.npz")
    r = integer_vs_trained(art, len(seeds), env, seed, calibration_episodes)
    if r["seeds"] != list(seeds):
        raise ArtifactError(f"{folder}: evaluation seeds {r['seeds']} are not the run's {seeds}")
    trained = np.asarray(episodes, np.float64)
    error = r["action_error"]
    return {
        "episodes": len(seeds),
        "eval_seeds": " ".join(str(s) for s in seeds),
        "trained_return": float(trained.mean()),
        "artifact_return": float(np.mean(r["trained"])),
        "integer_return": float(np.mean(r["integer"])),
        "integer_minus_trained": float(np.mean(np.asarray(r["integer"]) - trained)),
        "artifact_max_episode_diff": float(np.abs(np.asarray(r["trained"]) - trained).max()),
        "action_error_max": error.get("max", np.nan),
        "action_error_mean": error.get("mean", np.nan),
        "greedy_disagree": error.get("disagree", np.nan),
        "observations": r["n"],
        "calibration_episodes": calibration_episodes,
    }


def closed_loop_table(
    profile: str, data: str | Path | None = None,
    calibration_episodes: int = CALIBRATION_EPISODES,
) -> pd.DataFrame:  # fmt: skip
    """The full-integer policy's closed-loop return beside the trained network's, one row per
    run of ``profile`` that keeps ``policy.npz`` (read from the run store; nothing is trained).

    Each run's paired evaluation episodes (``summary.json``'s ``eval_seeds``) are played by the
    weight-only artifact (``artifact_return``: the trained network's arithmetic up to float
    rounding; in chaotic dynamics that rounding alone moves an episode's return by a few
    percent, ``artifact_max_episode_diff``, from the stored ``qat_end`` return,
    ``trained_return``) and by the
    full-integer policy calibrated on the first ``calibration_episodes`` of them, as
    ``nnc4rl export --integer`` does (``integer_return``). Returns are means over the episodes;
    ``integer_minus_trained`` is the mean per-episode difference. ``action_error_max`` /
    ``_mean``: |integer - artifact| action (env units) on the artifact's own states (SAC);
    ``greedy_disagree``: the fraction of those states where the greedy actions differ (DQN).
    Stale runs are kept with ``current`` False.

    :param data: the data folder (default :func:`nnc4rl.store.data_root`).
    """
    import pandas as pd

    from nnc4rl.results import load_episodes
    from nnc4rl.store import data_root

    folder = data_root(data) / "runs" / profile
    episodes = load_episodes(profile, data=data)
    rows = []
    if not episodes.empty:
        episodes = episodes[episodes["point"] == "qat_end"]
    for rid, ep in episodes.groupby("run_id", sort=False) if not episodes.empty else []:
        if not (folder / rid / "policy.npz").is_file():
            continue
        ep = ep.sort_values("episode")
        head = ep.iloc[0]
        row = {k: head[k] for k in ("run_id", "algo", "env", "arch", "sparsity", "bits", "seed",
                                    "current")}  # fmt: skip
        row |= closed_loop_row(folder / rid, ep["return"].tolist(), ep["eval_seed"].tolist(),
                               head["env"], int(head["seed"]), calibration_episodes)  # fmt: skip
        rows.append(row)
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    return table.sort_values(["env", "arch", "sparsity", "seed"], ignore_index=True)


def write_closed_loop_table(
    profile: str, table: pd.DataFrame, data: str | Path | None = None
) -> Path:
    """Write ``table`` (:func:`closed_loop_table`) as ``data/tables/<profile>/integer_closed_loop.csv``."""
    from nnc4rl.atomic import write_atomic
    from nnc4rl.store import data_root

    path = data_root(data) / "tables" / profile / TABLE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, table.to_csv(index=False, float_format="%.6g"))
    return path


def closed_loop_sentences(table: pd.DataFrame) -> list[str]:
    """One sentence per (env, arch, sparsity) of the current runs of :func:`closed_loop_table`:
    the mean integer-minus-trained return difference and its per-seed values."""
    from nnc4rl.readings import count

    table = table[table["current"].astype(bool)]
    if table.empty:
        return ["No current run keeps policy.npz: there is no integer policy to play."]
    out = []
    for (env, arch, sparsity), g in table.groupby(["env", "arch", "sparsity"], sort=True):
        seeds = ", ".join(f"seed {s}: {d:+.2f}" for s, d in zip(g["seed"], g["integer_minus_trained"],
                                                                  strict=True))  # fmt: skip
        if g["algo"].iloc[0] == "dqn":
            error = (
                f"greedy actions differ on {g['greedy_disagree'].max():.2%} of the states at most"
            )
        else:
            error = f"largest per-observation action error {g['action_error_max'].max():.3g}"
        out.append(
            f"{env} {arch}, sparsity {sparsity:.2f}: the integer policy's return minus the trained "
            f"network's is {g['integer_minus_trained'].mean():+.2f} on average over "
            f"{count(len(g), 'seed')} ({seeds}; trained {g['trained_return'].mean():.2f}); {error}; float "
            f"rounding alone (the weight-only artifact) moves an episode's return by up to "
            f"{g['artifact_max_episode_diff'].max():.2f}."
        )
    return out

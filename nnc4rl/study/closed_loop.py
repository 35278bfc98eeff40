"""The full-integer policy of every stored run, played in closed loop: a table of the run store.

For each run of a profile that keeps ``policy.npz``, its paired evaluation episodes are played by
the weight-only artifact and by the full-integer policy (:mod:`nnc4rl.export.closed_loop`), and
the integer-minus-trained return is reported (``data/tables/<profile>/integer_closed_loop.csv``,
written by the deployment notebook).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nnc4rl.export.closed_loop import CALIBRATION_EPISODES, integer_vs_trained
from nnc4rl.export.model import ArtifactError
from nnc4rl.runs.schema import CorruptRunError

if TYPE_CHECKING:
    import pandas as pd

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
    full-integer policy calibrated on ``calibration_episodes`` held-out episodes, as
    ``nnc4rl export --integer`` does (``integer_return``). Returns are means over the episodes;
    ``integer_minus_trained`` is the mean per-episode difference. ``action_error_max`` /
    ``_mean``: |integer - artifact| action (env units) on the artifact's own states (SAC);
    ``greedy_disagree``: the fraction of those states where the greedy actions differ (DQN).
    Stale runs are kept with ``current`` False.

    :param data: the data folder (default :func:`nnc4rl.runs.store.data_root`).
    """
    import pandas as pd

    from nnc4rl.runs.store import data_root
    from nnc4rl.study.results import load_episodes

    folder = data_root(data) / "runs" / profile
    episodes = load_episodes(profile, data=data)
    rows = []
    if not episodes.empty:
        episodes = episodes[episodes["point"] == "qat_end"]
    keeps = _keeps_policy(profile)
    for rid, ep in episodes.groupby("run_id", sort=False) if not episodes.empty else []:
        if not (folder / rid / "policy.npz").is_file():
            group = _group_of(folder / rid)
            if keeps.get(group):  # a quantized run of a group that keeps policies: damaged
                raise CorruptRunError(f"run folder {folder / rid} is corrupt: policy.npz is "
                                      "missing (its group keeps policies); a sweep recomputes "
                                      "it")  # fmt: skip
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


def _keeps_policy(profile: str) -> dict[str, bool]:
    """``{group name: keep_policy}`` of the profile as its YAML is now (empty if it is gone)."""
    from nnc4rl.core.config import ConfigError
    from nnc4rl.runs.profiles import load_profile

    try:
        return {g.name: g.keep_policy for g in load_profile(profile).groups}
    except ConfigError:
        return {}


def _group_of(folder: Path) -> str:
    """The group ``run.json`` of a (validated) run folder names."""
    import json

    return json.loads((folder / "run.json").read_text())["group"]


def write_closed_loop_table(
    profile: str, table: pd.DataFrame, data: str | Path | None = None
) -> Path:
    """Write ``table`` (:func:`closed_loop_table`) as ``data/tables/<profile>/integer_closed_loop.csv``."""
    from nnc4rl.core.atomic import write_atomic
    from nnc4rl.runs.store import data_root

    path = data_root(data) / "tables" / profile / TABLE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, table.to_csv(index=False, float_format="%.6g"))
    return path


def closed_loop_sentences(table: pd.DataFrame) -> list[str]:
    """One sentence per (env, arch, sparsity) of the current runs of :func:`closed_loop_table`:
    the mean integer-minus-trained return difference and its per-seed values."""
    from nnc4rl.study.readings import count

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

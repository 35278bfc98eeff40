"""A profile's finished runs as tidy pandas tables, and the paper's supplementary tables.

* :func:`load_runs` - one row per run and evaluation point: a quantized run gives two rows, at
  ``T`` (``finetune_end``: "dense" or "pruned", fp32) and at ``1.2 T`` (``qat_end``: "quantized
  only" or "pruned + quantized", int8). Returns are undiscounted episode returns.
* :func:`load_curves` - the learning curves (``evaluations.csv`` of every run).
* :func:`summarize` - per setting: mean over seeds with its Student-t 95 % interval, and the
  paired (same-seed) difference to the dense run.
* :func:`hyperparameter_table`, :func:`env_table` - supplementary tables 1-3 and 4-17.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nnc4rl import stats
from nnc4rl.config import apply_overrides, default_hyperparams
from nnc4rl.profiles import Group, load_profile
from nnc4rl.schema import point_bits
from nnc4rl.store import RunStore, data_root

VARIANTS = ("dense", "quantized only", "pruned", "pruned + quantized")
META = ("figure", "group", "algo", "env", "arch", "seed", "sparsity", "quantized", "bits", "T")


def variant(sparsity: float, phase: str) -> str:
    """The paper's name of an evaluation point: phase ``finetune_end`` (``T``) or ``qat_end``."""
    if phase == "qat_end":
        return "pruned + quantized" if sparsity > 0 else "quantized only"
    return "pruned" if sparsity > 0 else "dense"


def _finished(profile: str, figure: str | None, envs: list[str] | None, data) -> list[Path]:
    from nnc4rl.sweep import tasks_of

    store = RunStore(data_root(data) / "runs" / profile)
    folders = []
    for task in tasks_of(profile, figure, envs):
        state, reason = store.status(task.run_id)
        if state == "corrupt":
            from nnc4rl.store import CorruptRunError

            raise CorruptRunError(reason)
        if state == "done":
            folders.append(store.path(task.run_id))
    return folders


def load_runs(
    profile: str, figure: str | None = None, envs: list[str] | None = None, data=None
) -> pd.DataFrame:
    """One row per finished run of ``profile`` and evaluation point (see module docstring).

    Columns: run_id, figure, group, algo, env, arch, seed, sparsity (target), quantized, bits,
    T, phase, variant, step, return_mean, return_std, episodes, measured_sparsity, params
    (weights of the compressed network), nnz, fp32_bytes, compressed_bytes, nominal_ratio,
    real_ratio (of the network as evaluated: fp32 at ``T``, ``bits`` at ``1.2 T``), wall_time_s.
    Runs not yet trained are absent; a corrupt run folder raises ``CorruptRunError``.
    """
    rows: list[dict[str, Any]] = []
    for folder in _finished(profile, figure, envs, data):
        meta = json.loads((folder / "run.json").read_text())
        s = json.loads((folder / "summary.json").read_text())
        base = {
            "run_id": meta["run_id"], "figure": meta["figure"], "group": meta["group"],
            "algo": s["algo"], "env": s["env"], "arch": s["arch"], "seed": s["seed"],
            "sparsity": s["target_sparsity"], "quantized": s["quantized"], "bits": s["bits"],
            "T": s["T"], "wall_time_s": s["wall_time_s"],
        }  # fmt: skip
        for phase, ev in s["eval"].items():  # each point measured on the network evaluated there
            row = dict(base, phase=phase, variant=variant(s["target_sparsity"], phase))
            row.update(step=ev["step"], return_mean=ev["mean"], return_std=ev["std"],
                       episodes=ev["episodes"], measured_sparsity=ev["measured_sparsity"],
                       params=ev["params"], nnz=ev["nnz"], **{k: ev["size"][k] for k in (
                           "fp32_bytes", "compressed_bytes", "nominal_ratio", "real_ratio")})  # fmt: skip
            rows.append(row)
    df = pd.DataFrame(rows)
    if not df.empty:
        df = df.sort_values(
            ["figure", "env", "arch", "sparsity", "seed", "step"], ignore_index=True
        )
    return df


def load_curves(
    profile: str, figure: str | None = None, envs: list[str] | None = None, data=None
) -> pd.DataFrame:
    """Learning curves: one row per run and evaluation (columns of :data:`META`, run_id, step,
    phase, return_mean, return_std, episodes)."""
    frames = []
    for folder in _finished(profile, figure, envs, data):
        meta = json.loads((folder / "run.json").read_text())
        curve = pd.read_csv(folder / "evaluations.csv")
        curve = curve.rename(columns={"mean": "return_mean", "std": "return_std"})
        key = meta["key"]
        for col, value in (("run_id", meta["run_id"]), ("figure", meta["figure"]),
                           ("group", meta["group"]), ("algo", key["algo"]), ("env", key["env"]),
                           ("arch", key["arch"]), ("seed", key["seed"]),
                           ("sparsity", key["sparsity"]), ("quantized", key["quantize"]),
                           ("bits", key["bits"]), ("T", key["T"])):  # fmt: skip
            curve[col] = value
        frames.append(curve)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def bootstrap_ci(
    values, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``; ``(nan, nan)`` below two values.

    Not used for the figures or tables: at 2-5 seeds it covers the true mean far less often than
    its nominal level (see :mod:`nnc4rl.stats`); :func:`summarize` gives Student-t intervals.
    """
    return stats.percentile_bootstrap_ci(values, level, n_boot, seed)


# A setting: the group is not part of it, because a figure's control runs (equal-length
# fine-tuning, 4-bit QAT) live in groups of their own and share the main group's settings.
SUMMARY_KEYS = ("figure", "env", "arch", "T", "sparsity", "point", "variant")


def _main_run_rows(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per setting and seed.

    A control run (4-bit QAT, or the equal-length fine-tuning, possibly in a group of its own)
    trains exactly like the seed's main run up to ``T``, so it repeats that run's points at ``T``
    ("pruned", PTQ); the main run's (8-bit QAT, no extra fine-tuning) are kept. Any other
    duplicate is a bug and raises.
    """
    df = runs
    if "current" in df.columns:  # stale runs (settings changed since) never enter a summary
        df = df[df["current"].astype(bool)]
    rank = pd.Series(0, index=df.index)
    if "extra_finetune" in df.columns:
        rank += df["extra_finetune"].astype(bool).astype(int) * 2
    if "bits" in df.columns:
        rank += (df["bits"] != 8).astype(int)
    keys = [k for k in SUMMARY_KEYS if k in df.columns] + ["seed"]
    df = df.assign(_rank=rank).sort_values([*keys, "_rank"], kind="stable")
    best = df.groupby(keys, sort=False)["_rank"].transform("min")
    df = df[df["_rank"] == best]
    dup = df.duplicated(keys, keep=False)
    if dup.any():
        first = df[dup].iloc[0]
        raise ValueError(
            f"{int(dup.sum())} rows share a setting and seed, e.g. {first['variant']!r} at "
            f"sparsity {first['sparsity']:g}, seed {first['seed']} of {first['env']}"
        )
    return df.drop(columns="_rank")


def summarize(runs: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per figure, env, arch, T, sparsity, point and variant: the returns over seeds and their
    paired comparison with the same seeds' dense run.

    Columns: the keys; ``group`` (the run group the rows come from); ``n_seeds``, ``mean``, ``std`` (over seeds, ddof 1) and ``t95_low`` /
    ``t95_high``: the **Student-t** 95 % interval of the mean (NaN with one seed: no interval);
    ``n_paired`` (seeds that also have a dense run), ``dense_paired_mean`` (the dense return over
    those seeds), ``diff_vs_dense`` (mean same-seed difference to dense) with its Student-t
    interval ``diff_t95_low`` / ``diff_t95_high``, ``norm_vs_dense`` (mean of the per-seed
    normalised return ``1 + (x - dense) / |dense|``, see :func:`nnc4rl.stats.normalize_to_reference`);
    the mean size columns ``params``, ``nnz``, ``measured_sparsity``, ``eval_bits`` (32: fp32),
    ``compressed_bytes``, ``nominal_ratio``, ``real_ratio``. The dense reference is the
    ``finetune_end`` point of the sparsity-0 runs (the dense row's own paired columns are NaN).

    :param runs: :func:`load_runs` rows (stale rows, ``current`` False, are left out).
    :param level: interval coverage (default 95 %; the column names say 95).
    """
    df = _main_run_rows(runs)
    if df.empty:
        return pd.DataFrame()
    if "eval_bits" not in df.columns:
        df = df.assign(eval_bits=[point_bits(p, b) for p, b in zip(df["point"], df["bits"],
                                                                   strict=True)])  # fmt: skip
    setting = ["figure", "env", "arch", "T"]
    is_ref = (df["point"] == "finetune_end") & (df["sparsity"] == 0)
    reference = {
        k: dict(zip(g["seed"], g["return_mean"], strict=True))
        for k, g in df[is_ref].groupby(setting, sort=False)
    }
    rows = []
    for k, g in df.groupby(list(SUMMARY_KEYS), sort=True):
        key = dict(zip(SUMMARY_KEYS, k, strict=True))
        x = g["return_mean"].to_numpy(dtype=float)
        lo, hi = stats.t_interval(x, level)
        row: dict[str, Any] = dict(key, group=", ".join(sorted(set(g["group"]))), n_seeds=int(g["seed"].nunique()), mean=float(x.mean()),
                                   std=float(x.std(ddof=1)) if x.size > 1 else np.nan,
                                   t95_low=lo, t95_high=hi)  # fmt: skip
        ref = reference.get(tuple(key[c] for c in setting), {})
        own_ref = key["point"] == "finetune_end" and key["sparsity"] == 0
        p = stats.paired_difference(dict(zip(g["seed"], x, strict=True)), {} if own_ref else ref)
        row.update(n_paired=p["n"], dense_paired_mean=p["ref_mean"], diff_vs_dense=p["diff"],
                   diff_t95_low=p["low"], diff_t95_high=p["high"],
                   norm_vs_dense=p["normalized"])  # fmt: skip
        row.update(params=int(g["params"].iloc[0]), nnz=float(g["nnz"].mean()),
                   measured_sparsity=float(g["measured_sparsity"].mean()),
                   eval_bits=int(g["eval_bits"].iloc[0]),
                   compressed_bytes=float(g["compressed_bytes"].mean()),
                   nominal_ratio=float(g["nominal_ratio"].mean()),
                   real_ratio=float(g["real_ratio"].mean()))  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def hyperparameter_table(profile: str) -> dict[int, pd.DataFrame]:
    """Supplementary tables 1-3: ``{1: SAC (fig 4), 2: DQN CNN (fig 5), 3: DQN ResNet (fig 6)}``,
    each with columns hyperparameter, value - the YAML defaults with the profile's overrides,
    plus the profile's T, seeds, sparsities and bits."""
    from stable_baselines3 import DQN, SAC

    tables = {}
    for group in load_profile(profile).groups:
        number = {"fig4": 1, "fig5": 2, "fig6": 3}[group.figure]
        hyper = apply_overrides(default_hyperparams(group.algo, group.archs[0]), group.overrides,
                                SAC if group.algo == "sac" else DQN)  # fmt: skip
        flat = {"algo": group.algo, "network": ", ".join(group.archs), "T (env steps)": group.T,
                "seeds": group.seeds, "sparsities": ", ".join(f"{s:g}" for s in group.sparsities),
                "QAT bits": group.bits if group.quantize else "none",
                "sparsity distribution": group.distribution}  # fmt: skip
        flat.update(_flatten(hyper))
        tables[number] = pd.DataFrame(
            {"hyperparameter": list(flat), "value": [str(v) for v in flat.values()]}
        )
    return tables


def table_numbers() -> dict[tuple[str, str, str], int]:
    """Supplementary table number (4-17) of each (figure, env, arch), in the paper profile's order."""
    out, n = {}, 4
    for g in load_profile("paper").groups:
        for arch in g.archs:
            for env in g.envs:
                out[(g.figure, env, arch)] = n
                n += 1
    return out


def _interval_text(low: float, high: float) -> str:
    """``[low, high]``, or why there is none (one seed)."""
    return "n/a (1 seed)" if not np.isfinite(low) else f"[{low:.1f}, {high:.1f}]"


def env_table(summary: pd.DataFrame, env: str, arch: str) -> pd.DataFrame:
    """One supplementary table (4-17): per sparsity, for every variant present (the paper's four
    and the controls), the mean return over seeds with its Student-t 95 % interval and the paired
    difference to the same seeds' dense run with its interval; then parameters, non-zeros and the
    nominal / real compression ratio of each storage format (fp32 at ``T``, int8 / int4 ...)."""
    sub = summary[(summary["env"] == env) & (summary["arch"] == arch)]
    names = [v for v in VARIANTS if v in set(sub["variant"])]
    names += sorted(set(sub["variant"]) - set(names))
    rows = []
    for s, g in sub.groupby("sparsity", sort=True):
        row: dict[str, Any] = {"sparsity": s, "seeds": int(g["n_seeds"].max())}
        for _, r in g.iterrows():
            name = r["variant"]
            row[name] = r["mean"]
            row[f"{name} 95% t-CI"] = _interval_text(r["t95_low"], r["t95_high"])
            if np.isfinite(r["diff_vs_dense"]):
                row[f"{name} - dense (paired)"] = r["diff_vs_dense"]
                row[f"{name} - dense 95% t-CI"] = _interval_text(
                    r["diff_t95_low"], r["diff_t95_high"]
                )
            storage = "fp32" if r["eval_bits"] >= 32 else f"int{r['eval_bits']}"
            row.setdefault("params", r["params"])
            if storage == "fp32" and r["point"] == "finetune_end":
                row["nnz"] = round(r["nnz"])
            row.setdefault(f"nominal_ratio_{storage}", r["nominal_ratio"])
            row.setdefault(f"real_ratio_{storage}", r["real_ratio"])
        rows.append(row)
    df = pd.DataFrame(rows)
    cols = ["sparsity", "seeds"]
    for v in names:
        cols += [v, f"{v} 95% t-CI", f"{v} - dense (paired)", f"{v} - dense 95% t-CI"]
    cols += ["params", "nnz"]
    ratios = sorted((c for c in df.columns if "_ratio_" in c),
                    key=lambda c: (c.split("_")[-1] != "fp32", -_bits_of(c), c))  # fmt: skip
    return df.reindex(columns=[c for c in cols if c in df.columns] + ratios)


def _bits_of(column: str) -> int:
    tail = column.rsplit("_", 1)[-1]
    return 32 if tail == "fp32" else int(tail.removeprefix("int"))


def write_tables(profile: str, runs: pd.DataFrame, data=None) -> dict[str, pd.DataFrame]:
    """Write supplementary tables 1-3, those of the envs in ``runs`` (4-17) and ``summary.csv``
    (every setting of :func:`summarize`, Student-t intervals, paired columns) as CSV under
    ``data/tables/<profile>/``; returns ``{file name: table}``."""
    folder = data_root(data) / "tables" / profile
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, pd.DataFrame] = {}
    for n, t in hyperparameter_table(profile).items():
        out[f"table{n:02d}_hyperparameters.csv"] = t
    summary = summarize(runs) if not runs.empty else pd.DataFrame()
    numbers = table_numbers()
    if not summary.empty:
        for (fig, env, arch), _ in summary.groupby(["figure", "env", "arch"]):
            n = numbers.get((fig, env, arch), 0)
            out[f"table{n:02d}_{env}_{arch}.csv"] = env_table(summary, env, arch)
        out["summary.csv"] = summary
    for name, t in out.items():
        t.to_csv(folder / name, index=False, float_format="%.6g")
    return out


__all__ = ["Group", "load_runs", "load_curves", "summarize", "bootstrap_ci", "write_tables",
           "hyperparameter_table", "env_table", "table_numbers", "variant"]  # fmt: skip

"""A profile's finished runs as tidy pandas tables, and the paper's supplementary tables.

* :func:`load_runs` - one row per run and evaluation point: a quantized run gives two rows, at
  ``T`` (``finetune_end``: "dense" or "pruned", fp32) and at ``1.2 T`` (``qat_end``: "quantized
  only" or "pruned + quantized", int8). Returns are undiscounted episode returns.
* :func:`load_curves` - the learning curves (``evaluations.csv`` of every run).
* :func:`summarize` - mean and 95 % bootstrap interval over seeds per env, arch, sparsity, variant.
* :func:`hyperparameter_table`, :func:`env_table` - supplementary tables 1-3 and 4-17.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nnc4rl.config import apply_overrides, default_hyperparams
from nnc4rl.profiles import Group, load_profile
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
    """Percentile bootstrap interval of the mean of ``values`` (one value: the value itself)."""
    x = np.asarray(values, dtype=float)
    if x.size <= 1:
        return (float(x.mean()), float(x.mean())) if x.size else (np.nan, np.nan)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per figure, env, arch, sparsity and variant: mean return with its 95 % bootstrap interval
    over seeds (``ci_low``, ``ci_high``), ``n_seeds``, and the mean size columns."""
    keys = ["figure", "group", "env", "arch", "T", "sparsity", "variant"]
    rows = []
    for k, g in runs.groupby(keys, sort=True):
        lo, hi = bootstrap_ci(g["return_mean"].to_numpy())
        rows.append(dict(zip(keys, k, strict=True), mean=g["return_mean"].mean(), ci_low=lo,
                         ci_high=hi, n_seeds=g["seed"].nunique(), params=int(g["params"].iloc[0]),
                         nnz=g["nnz"].mean(), measured_sparsity=g["measured_sparsity"].mean(),
                         nominal_ratio=g["nominal_ratio"].mean(),
                         real_ratio=g["real_ratio"].mean()))  # fmt: skip
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


def env_table(summary: pd.DataFrame, env: str, arch: str) -> pd.DataFrame:
    """One supplementary table (4-17): per sparsity the returns of the four variants with their
    95 % intervals, and parameters, non-zeros, nominal and real compression ratios."""
    sub = summary[(summary["env"] == env) & (summary["arch"] == arch)]
    rows = []
    for s, g in sub.groupby("sparsity", sort=True):
        row: dict[str, Any] = {"sparsity": s}
        for _, r in g.iterrows():
            name = r["variant"]
            row[f"{name}"] = r["mean"]
            row[f"{name} ci"] = f"[{r['ci_low']:.1f}, {r['ci_high']:.1f}]"
            if name in ("pruned + quantized", "quantized only"):
                row.update(nominal_ratio_int8=r["nominal_ratio"], real_ratio_int8=r["real_ratio"])
            else:
                row.update(params=r["params"], nnz=round(r["nnz"]),
                           nominal_ratio_fp32=r["nominal_ratio"], real_ratio_fp32=r["real_ratio"],
                           seeds=r["n_seeds"])  # fmt: skip
        rows.append(row)
    cols = ["sparsity", "seeds"]
    for v in VARIANTS:
        cols += [v, f"{v} ci"]
    cols += ["params", "nnz", "nominal_ratio_fp32", "real_ratio_fp32", "nominal_ratio_int8",
             "real_ratio_int8"]  # fmt: skip
    df = pd.DataFrame(rows)
    return df.reindex(columns=[c for c in cols if c in df.columns])


def write_tables(profile: str, runs: pd.DataFrame, data=None) -> dict[str, pd.DataFrame]:
    """Write supplementary tables 1-3 and those of the envs in ``runs`` as CSV under
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
    for name, t in out.items():
        t.to_csv(folder / name, index=False, float_format="%.6g")
    return out


__all__ = ["Group", "load_runs", "load_curves", "summarize", "bootstrap_ci", "write_tables",
           "hyperparameter_table", "env_table", "table_numbers", "variant"]  # fmt: skip

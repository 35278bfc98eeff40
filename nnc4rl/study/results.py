"""A profile's finished runs as tidy pandas tables, and the paper's supplementary tables.

* :func:`load_runs` - one row per run and evaluation point: a quantized run gives two rows, at
  ``T`` (``finetune_end``: "dense" or "pruned", fp32) and at ``1.2 T`` (``qat_end``: "quantized
  only" or "pruned + quantized", int8). Returns are undiscounted episode returns.
* :func:`load_curves` - the learning curves (``evaluations.csv`` of every run).
* :func:`summarize` - per setting: mean over seeds with its Student-t 95 % interval, and the
  paired (same-seed) difference to the dense run trained as long (and to dense at T, the
  paper's comparison).
* :func:`hyperparameter_table`, :func:`env_table` - supplementary tables 1-3 and 4-17.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from nnc4rl.core.config import ConfigError, apply_overrides, default_hyperparams
from nnc4rl.runs import schema
from nnc4rl.runs.profiles import FIGURES, Group, Profile, _as_envs, load_profile
from nnc4rl.runs.schema import point_bits
from nnc4rl.runs.store import RunStore, data_root, run_id, run_key
from nnc4rl.study import stats

VARIANTS = ("dense", "quantized only", "pruned", "pruned + quantized")
META = ("figure", "group", "algo", "env", "arch", "seed", "sparsity", "quantized", "bits", "T")


def variant(sparsity: float, point: str, bits: int = 8) -> str:
    """The paper's name of an evaluation point (:func:`nnc4rl.runs.schema.variant`)."""
    return schema.variant(sparsity, point, bits)


# Columns of the tables the readers return (also when no run is finished yet).
RUN_INFO = ["run_id", "figure", "group", "algo", "env", "arch", "seed", "sparsity", "quantized",
            "bits", "extra_finetune", "T"]  # fmt: skip
STALE = ["current", "stale_reason"]
RUN_COLUMNS = [*RUN_INFO, "point", "variant", "eval_bits", "step", "return_mean", "return_std",
               "episodes", "measured_sparsity", "params", "nnz", "fp32_bytes", "compressed_bytes",
               "nominal_ratio", "real_ratio", "wall_time_s", *STALE]  # fmt: skip
CURVE_COLUMNS = [*RUN_INFO, "step", "phase", "return_mean", "return_std", "episodes", *STALE]
EPISODE_COLUMNS = [*RUN_INFO, "point", "variant", "eval_bits", "step", "episode", "eval_seed",
                   "return", *STALE]  # fmt: skip


@dataclass(frozen=True)
class StoredRun:
    """A finished run folder as read from the store, and whether the profile still asks for it.

    :param current: the profile (as its YAML is now) has a run with this id.
    :param stale_reason: why not, in one line (empty when ``current``).
    """

    folder: Path
    meta: dict[str, Any]
    summary: dict[str, Any]
    current: bool
    stale_reason: str

    def info(self) -> dict[str, Any]:
        """The run's columns shared by every table (:data:`RUN_INFO`)."""
        m, s = self.meta, self.summary
        return {"run_id": m["run_id"], "figure": m["figure"], "group": m["group"],
                "algo": s["algo"], "env": s["env"], "arch": s["arch"], "seed": s["seed"],
                "sparsity": s["target_sparsity"], "quantized": s["quantized"], "bits": s["bits"],
                "extra_finetune": s["extra_finetune"], "T": s["T"]}  # fmt: skip


def expected_run_ids(prof: Profile) -> dict[str, str]:
    """``{run id: group name}`` of every run ``prof`` asks for, computed from the YAML alone
    (hyperparameters by :meth:`Group.hyperparameters`, ids by :func:`nnc4rl.runs.store.run_id`)."""
    out: dict[str, str] = {}
    for g in prof.groups:
        hyper = {arch: g.hyperparameters(arch) for arch in g.archs}
        for cell in g.cells():
            spec = SimpleNamespace(**cell)
            out[run_id(run_key(spec, hyper[cell["arch"]]))] = g.name
    return out


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """The dotted path of the first value that differs between ``a`` and ``b`` (or ``None``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            d = _first_difference(a.get(k), b.get(k), f"{path}{k}.")
            if d is not None:
                return d
        return None
    return None if a == b else path.rstrip(".")


def _lookup(d: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def stale_reason(prof: Profile | None, meta: dict[str, Any], profile: str) -> str:
    """Why the stored run ``meta`` (its ``run.json``) is not one that ``prof`` asks for now."""
    if prof is None:
        return f"profile {profile!r} no longer exists"
    g = prof.group(meta["group"])
    if g is None:
        return f"group {meta['group']!r} is no longer in profile {prof.name}"
    key = meta["key"]
    is_in = {"env": g.envs, "arch": g.archs, "sparsity": g.sparsities, "seed": range(g.seeds)}
    for name, allowed in is_in.items():
        if key[name] not in allowed:
            shown = f"0..{g.seeds - 1}" if name == "seed" else ", ".join(map(str, allowed))
            return f"{name} {key[name]!r} is no longer in group {g.name!r} ({shown})"
    same = {"algo": g.algo, "T": g.T, "distribution": g.distribution, "quantize": g.quantize,
            "bits": g.bits if g.quantize else 32, "extra_finetune": g.extra_finetune}  # fmt: skip
    for name, now in same.items():
        if key.get(name) != now:
            return f"{name} is {key.get(name)!r} in the run, {now!r} in group {g.name!r}"
    hyper = g.hyperparameters(key["arch"])
    where = _first_difference(key["hyperparameters"], hyper)
    if where is not None:
        return (
            f"hyperparameter {where} is {_lookup(key['hyperparameters'], where)!r} in the run, "
            f"{_lookup(hyper, where)!r} in group {g.name!r}"
        )
    return f"its id differs from the one profile {prof.name} gives it now"


def _finished(
    profile: str, figure: str | None, envs: str | list[str] | None, data
) -> list[StoredRun]:
    """Every finished run folder under ``data/runs/<profile>/`` (of ``figure`` / ``envs``), read
    and checked (:func:`nnc4rl.runs.schema.validate_run_folder`), flagged ``current`` or stale.

    :raises CorruptRunError: one line naming the first damaged folder (a sweep recomputes it).
    """
    store = RunStore(data_root(data) / "runs" / profile)
    try:
        prof: Profile | None = load_profile(profile)
    except ConfigError:
        if not store.run_ids():
            raise
        prof = None  # the profile is gone, its runs are still readable (all stale)
    if prof is not None:
        prof.select(figure, envs)  # one clear line for an unknown figure or env
    elif figure is not None and figure not in FIGURES:
        raise ConfigError(f"figure={figure!r} is invalid: choose one of {', '.join(FIGURES)}")
    wanted = _as_envs(envs)
    expected = expected_run_ids(prof) if prof is not None else {}
    out = []
    for rid in store.run_ids():
        docs = schema.validate_run_folder(store.path(rid))
        meta = docs["run"]
        if (figure and meta["figure"] != figure) or (wanted and meta["key"]["env"] not in wanted):
            continue
        current = expected.get(rid) == meta["group"]
        reason = "" if current else stale_reason(prof, meta, profile)
        out.append(StoredRun(store.path(rid), meta, docs["summary"], current, reason))
    return out


def _table(rows: list[dict[str, Any]], columns: list[str], order: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=columns)
    return df.sort_values(order, ignore_index=True, kind="stable") if not df.empty else df


def load_runs(
    profile: str, figure: str | None = None, envs: str | list[str] | None = None, data=None
) -> pd.DataFrame:
    """One row per finished run of ``profile`` and evaluation point, read from the run store's
    folders alone (no gymnasium, SB3 or sweep import).

    Columns (:data:`RUN_COLUMNS`): run_id, figure, group, algo, env, arch, seed, sparsity
    (target), quantized, bits (QAT bits, 32 if not quantized), extra_finetune, T, point
    (``finetune_end``, ``qat_end``, ``extra_finetune_end``, ``ptq<b>``), variant (the paper's
    name, :func:`variant`), eval_bits (bit width of the network evaluated there), step,
    return_mean, return_std, episodes, measured_sparsity, params (weights of the compressed
    network), nnz, fp32_bytes, compressed_bytes, nominal_ratio, real_ratio (of the network
    evaluated at that point), wall_time_s, current, stale_reason.

    Runs the profile no longer asks for (its YAML changed since) are returned too, with
    ``current`` False and ``stale_reason`` saying why; filter on ``current`` to drop them.

    :param envs: an env id or a list of them (``None`` / empty: all).
    :raises CorruptRunError: one line naming a damaged run folder.
    """
    rows: list[dict[str, Any]] = []
    for run in _finished(profile, figure, envs, data):
        s = run.summary
        base = run.info() | {"wall_time_s": s["wall_time_s"], "current": run.current,
                             "stale_reason": run.stale_reason}  # fmt: skip
        for point, ev in s["eval"].items():  # each point measured on the network evaluated there
            rows.append(base | {
                "point": point, "variant": variant(s["target_sparsity"], point, s["bits"]),
                "eval_bits": schema.point_bits(point, s["bits"]), "step": ev["step"],
                "return_mean": ev["mean"], "return_std": ev["std"], "episodes": ev["episodes"],
                "measured_sparsity": ev["measured_sparsity"], "params": ev["params"],
                "nnz": ev["nnz"], **{k: ev["size"][k] for k in schema.SIZE_FIELDS},
            })  # fmt: skip
    return _table(rows, RUN_COLUMNS, ["figure", "env", "arch", "sparsity", "seed", "step",
                                      "point", "run_id"])  # fmt: skip


def load_curves(
    profile: str, figure: str | None = None, envs: str | list[str] | None = None, data=None
) -> pd.DataFrame:
    """Learning curves: one row per finished run and evaluation in its ``evaluations.csv``
    (columns :data:`CURVE_COLUMNS`: the run's columns, step, phase, return_mean, return_std,
    episodes, current, stale_reason). Same arguments as :func:`load_runs`."""
    rows: list[dict[str, Any]] = []
    for run in _finished(profile, figure, envs, data):
        base = run.info() | {"current": run.current, "stale_reason": run.stale_reason}
        with open(run.folder / "evaluations.csv", newline="") as f:
            for r in csv.DictReader(f):
                rows.append(base | {"step": int(r["step"]), "phase": r["phase"],
                                    "return_mean": float(r["mean"]),
                                    "return_std": float(r["std"]),
                                    "episodes": int(r["episodes"])})  # fmt: skip
    return _table(rows, CURVE_COLUMNS, ["figure", "env", "arch", "sparsity", "seed", "run_id",
                                        "step"])  # fmt: skip


def load_episodes(
    profile: str, figure: str | None = None, envs: str | list[str] | None = None, data=None
) -> pd.DataFrame:
    """Every evaluation episode: one row per finished run, evaluation point and episode
    (columns :data:`EPISODE_COLUMNS`: the run's columns, point, variant, eval_bits, step,
    episode (0-based), eval_seed (the episode's reset seed, the same at every point of a run, so
    points compare paired), return, current, stale_reason). Same arguments as
    :func:`load_runs`."""
    rows: list[dict[str, Any]] = []
    for run in _finished(profile, figure, envs, data):
        s = run.summary
        base = run.info() | {"current": run.current, "stale_reason": run.stale_reason}
        for point, ev in s["eval"].items():
            head = base | {"point": point, "variant": variant(s["target_sparsity"], point,
                                                              s["bits"]),
                           "eval_bits": schema.point_bits(point, s["bits"]), "step": ev["step"]}  # fmt: skip
            for i, (seed, ret) in enumerate(zip(s["eval_seeds"], ev["returns"], strict=True)):
                rows.append(head | {"episode": i, "eval_seed": seed, "return": ret})
    return _table(rows, EPISODE_COLUMNS, ["figure", "env", "arch", "sparsity", "seed", "step",
                                          "point", "run_id", "episode"])  # fmt: skip


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


SUMMARY_COLUMNS = [*SUMMARY_KEYS, "group", "n_seeds", "mean", "std", "t95_low", "t95_high",
                   "reference", "n_paired", "dense_paired_mean", "diff_vs_dense", "diff_t95_low",
                   "diff_t95_high", "norm_vs_dense", "max_loss", "paper_n_paired",
                   "paper_dense_paired_mean", "paper_diff_vs_dense", "paper_diff_t95_low", "paper_diff_t95_high", "params",
                   "nnz", "measured_sparsity", "eval_bits", "compressed_bytes", "nominal_ratio",
                   "real_ratio"]  # fmt: skip
# Points trained 1.2 T (QAT, the equal-length control) and their dense fp32 reference of equal
# training length: the sparsity-0 equal-length control's point.
LONG_POINTS = ("qat_end", "extra_finetune_end")
REFERENCE_POINT = {False: "finetune_end", True: "extra_finetune_end"}


def reference_variant(point: str) -> str:
    """The dense fp32 variant trained as long as ``point``: "dense" (T) or "dense, 1.2 T"."""
    return "dense, 1.2 T" if point in LONG_POINTS else "dense"


def max_loss(low: float, dense_mean: float) -> float:
    """The largest loss a paired interval leaves possible, as a fraction of ``|dense_mean|``:
    ``-low / |dense_mean|``, 0 when the lower bound ``low`` is above 0, NaN without an interval."""
    if not np.isfinite(low) or not np.isfinite(dense_mean) or dense_mean == 0:
        return np.nan
    return max(0.0, -low / abs(dense_mean))


def summarize(runs: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per figure, env, arch, T, sparsity, point and variant: the returns over seeds and their
    paired comparison with the same seeds' dense run.

    Columns: the keys; ``group`` (the run group the rows come from); ``n_seeds``, ``mean``, ``std`` (over seeds, ddof 1) and ``t95_low`` /
    ``t95_high``: the **Student-t** 95 % interval of the mean (NaN with one seed: no interval);
    ``reference``: the dense fp32 variant trained as long (:func:`reference_variant`: "dense" at T
    for points at T, "dense, 1.2 T" for QAT and the equal-length control); ``n_paired`` (seeds
    that also have that reference), ``dense_paired_mean`` (the reference's return over those
    seeds), ``diff_vs_dense`` (mean same-seed difference to it) with its Student-t interval
    ``diff_t95_low`` / ``diff_t95_high``, ``norm_vs_dense`` (mean of the per-seed normalised
    return ``1 + (x - dense) / |dense|``, see :func:`nnc4rl.study.stats.normalize_to_reference`),
    ``max_loss`` (:func:`max_loss`: the largest loss the interval leaves possible, a fraction of
    dense); ``paper_*``: the same against dense at T whatever the point's length (the paper's own
    comparison; equal to the above for points at T); the mean size columns ``params``, ``nnz``,
    ``measured_sparsity``, ``eval_bits`` (32: fp32), ``compressed_bytes``, ``nominal_ratio``,
    ``real_ratio``. A reference row's own paired columns are NaN.

    :param runs: :func:`load_runs` rows (stale rows, ``current`` False, are left out).
    :param level: interval coverage (default 95 %; the column names say 95).
    """
    df = _main_run_rows(runs)
    if df.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    if "eval_bits" not in df.columns:
        df = df.assign(eval_bits=[point_bits(p, b) for p, b in zip(df["point"], df["bits"],
                                                                   strict=True)])  # fmt: skip
    setting = ["figure", "env", "arch", "T"]
    dense = df[df["sparsity"] == 0]
    reference = {  # (point of the reference, setting) -> {seed: return}
        (point, *k): dict(zip(g["seed"], g["return_mean"], strict=True))
        for point in REFERENCE_POINT.values()
        for k, g in dense[dense["point"] == point].groupby(setting, sort=False)
    }
    rows = []
    for k, g in df.groupby(list(SUMMARY_KEYS), sort=True):
        key = dict(zip(SUMMARY_KEYS, k, strict=True))
        x = g["return_mean"].to_numpy(dtype=float)
        lo, hi = stats.t_interval(x, level)
        row: dict[str, Any] = dict(key, group=", ".join(sorted(set(g["group"]))), n_seeds=int(g["seed"].nunique()), mean=float(x.mean()),
                                   std=float(x.std(ddof=1)) if x.size > 1 else np.nan,
                                   t95_low=lo, t95_high=hi)  # fmt: skip
        where = tuple(key[c] for c in setting)
        values = dict(zip(g["seed"], x, strict=True))
        ref_point = REFERENCE_POINT[key["point"] in LONG_POINTS]
        own_ref = key["sparsity"] == 0 and key["point"] in REFERENCE_POINT.values()
        p = stats.paired_difference(
            values, {} if own_ref else reference.get((ref_point, *where), {})
        )
        at_T = p if ref_point == "finetune_end" else stats.paired_difference(
            values, {} if own_ref else reference.get(("finetune_end", *where), {}))  # fmt: skip
        row.update(reference=reference_variant(key["point"]), n_paired=p["n"],
                   dense_paired_mean=p["ref_mean"], diff_vs_dense=p["diff"],
                   diff_t95_low=p["low"], diff_t95_high=p["high"], norm_vs_dense=p["normalized"],
                   max_loss=max_loss(p["low"], p["ref_mean"]), paper_n_paired=at_T["n"],
                   paper_dense_paired_mean=at_T["ref_mean"], paper_diff_vs_dense=at_T["diff"], paper_diff_t95_low=at_T["low"],
                   paper_diff_t95_high=at_T["high"])  # fmt: skip
        row.update(params=int(g["params"].iloc[0]), nnz=float(g["nnz"].mean()),
                   measured_sparsity=float(g["measured_sparsity"].mean()),
                   eval_bits=int(g["eval_bits"].iloc[0]),
                   compressed_bytes=float(g["compressed_bytes"].mean()),
                   nominal_ratio=float(g["nominal_ratio"].mean()),
                   real_ratio=float(g["real_ratio"].mean()))  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


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
    from nnc4rl.compress.algos import algo_by_name

    tables = {}
    for group in load_profile(profile).groups:
        number = {"fig4": 1, "fig5": 2, "fig6": 3}.get(group.figure)
        if number is None:  # a pilot chooses a T: no supplementary table
            continue
        hyper = apply_overrides(default_hyperparams(group.algo, group.archs[0]), group.overrides,
                                algo_by_name(group.algo).load_class())  # fmt: skip
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
    difference to the same seeds' dense run of equal training length (named in the column: dense
    at T, or dense fine-tuned to 1.2 T for the 1.2 T variants) with its interval; then parameters,
    non-zeros and the nominal / real compression ratio of each storage format (fp32 at ``T``,
    int8 / int4 ...)."""
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
                row[f"{name} - {r['reference']} (paired)"] = r["diff_vs_dense"]
                row[f"{name} - {r['reference']} 95% t-CI"] = _interval_text(
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
    reference = dict(zip(sub["variant"], sub["reference"], strict=True))
    for v in names:
        ref = reference[v]
        cols += [v, f"{v} 95% t-CI", f"{v} - {ref} (paired)", f"{v} - {ref} 95% t-CI"]
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


__all__ = ["Group", "load_runs", "load_curves", "load_episodes", "StoredRun", "summarize", "write_tables",
           "hyperparameter_table", "env_table", "table_numbers", "variant"]  # fmt: skip

"""Readings computed from the run table: every sentence a notebook prints about a result.

**Without loss**, defined once and used everywhere (figures 4-6, supplementary tables, claims):
a compressed setting is *without loss* when the paired (same-seed) difference of its return to
the **dense fp32 return of equal training length** (dense at ``T`` for a network evaluated at
``T``; dense fine-tuned to ``1.2 T`` for QAT and the equal-length control) has a Student-t 95 %
interval whose lower bound lies above ``-TOLERANCE x |dense mean|`` (5 %), over at least
:data:`MIN_SEEDS` seeds. It shows a *loss* when the whole interval lies below that bound, and is
*inconclusive* otherwise. It is *not measurable* for a pipeline-check group (nothing learns at
that T), with fewer than :data:`MIN_SEEDS` seeds, or without a dense run trained as long.
Beside every verdict stands how much the data say: the largest loss the interval leaves possible,
"no loss larger than X % (95 %)" (:func:`loss_bound`). The paper compares networks trained
1.2 T with dense trained T; that comparison is printed too, labelled as the paper's.

A claim "up to sparsity S without loss" holds only when every measured sparsity up to S is
without loss, and fails when any of them shows a loss.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from nnc4rl.study import stats
from nnc4rl.study.results import _main_run_rows, max_loss, summarize

TOLERANCE = 0.05
MIN_SEEDS = 2

WITHOUT_LOSS, LOSS, INCONCLUSIVE, NOT_MEASURABLE = (
    "without loss", "loss", "inconclusive", "not measurable",
)  # fmt: skip
HOLDS, FAILS, UNDECIDED, NOT_AT_SCALE = (
    "holds", "does not hold", "inconclusive", "not measurable at this scale",
)  # fmt: skip


def definition(tolerance: float = TOLERANCE) -> str:
    """The operational definition of "without loss", as one printable sentence."""
    return (
        f"'without loss' = the paired (same-seed) difference to the dense fp32 return of equal "
        f"training length (dense at T for a network at T, dense fine-tuned to 1.2 T for QAT) has "
        f"a Student-t 95 % interval whose lower bound is above -{tolerance:.0%} of |dense mean| "
        f"(at least {MIN_SEEDS} seeds); 'loss' = the whole interval is below that bound; "
        f"otherwise 'inconclusive'"
    )


def loss_bound(max_loss: float) -> str:
    """How much loss the data rule out, from a ``max_loss`` fraction
    (:func:`nnc4rl.study.results.max_loss`): "no loss larger than 7.3 % (95 %)", "no loss (the
    95 % interval is above 0)", or "no bound" without an interval."""
    if not np.isfinite(max_loss):
        return "no bound"
    if max_loss == 0:
        return "no loss (the 95 % interval is above 0)"
    return f"no loss larger than {100 * max_loss:.1f} % (95 %)"


def is_pipeline_check(label: str) -> bool:
    """Whether a group's caption label marks it as a pipeline check (no learning at its T)."""
    return "pipeline check" in (label or "").lower()


def loss_verdict(
    n: int,
    low: float,
    high: float,
    dense_mean: float,
    pipeline_check: bool = False,
    tolerance: float = TOLERANCE,
) -> str:
    """The verdict of the module's definition of "without loss".

    :param n: paired seeds.
    :param low: lower bound of the t interval of the mean paired difference to dense.
    :param high: its upper bound.
    :param dense_mean: the dense return over the same seeds (its magnitude scales the tolerance).
    :param pipeline_check: the group is a pipeline check.
    """
    if pipeline_check or n < MIN_SEEDS or not np.isfinite(low):
        return NOT_MEASURABLE
    bound = -tolerance * abs(dense_mean)
    if low > bound:
        return WITHOUT_LOSS
    if high < bound:
        return LOSS
    return INCONCLUSIVE


def _fmt_interval(low: float, high: float, sign: bool = True) -> str:
    if not np.isfinite(low):
        return "no interval"
    f = "+.1f" if sign else ".1f"
    return f"[{low:{f}}, {high:{f}}]"


def pct_interval(low: float, high: float) -> str:
    """``[-3.2%, +12.2%]`` from fractions, or ``(no interval)``."""
    return f"[{low:+.1%}, {high:+.1%}]" if np.isfinite(low) else "(no interval)"


def fmt_values(values: Iterable[float]) -> str:
    return ", ".join(f"{s:g}" for s in values)


def count(n: int, noun: str) -> str:
    """``"1 seed"``, ``"3 seeds"``: a count with its noun in the right number."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def fmt_ratio(x: float) -> str:
    return f"{x:.0f}x" if x >= 10 else f"{x:.1f}x"


# -- paired comparisons between two variants ------------------------------------------------
SETTING = ("figure", "env", "arch", "T", "sparsity")


def per_seed(runs: pd.DataFrame, variant: str) -> dict[tuple, dict[int, float]]:
    """``{(figure, env, arch, T, sparsity): {seed: return}}`` of one variant (main runs kept
    where control runs repeat a point, stale runs left out: as :func:`nnc4rl.study.results.summarize`).
    """
    df = _main_run_rows(runs)
    df = df[df["variant"] == variant]
    return {
        k: dict(zip(g["seed"], g["return_mean"], strict=True))
        for k, g in df.groupby(list(SETTING), sort=True)
    }


def compare(runs: pd.DataFrame, a: str, b: str, b_at_dense: bool = False) -> pd.DataFrame:
    """Paired (same-seed) difference ``a - b`` per setting where both exist.

    :param a: the variant under test (e.g. "pruned + quantized").
    :param b: the reference variant (e.g. "pruned", "pruned, 1.2 T" or "dense").
    :param b_at_dense: take ``b`` at sparsity 0 for every sparsity of ``a`` ("dense").
    :return: columns figure, env, arch, T, sparsity, n, diff, low, high (t interval of the mean
        difference), ref_mean (``b`` over the paired seeds), scale (``|dense mean|`` of the
        setting, for tolerances), and ``per_seed`` (``{seed: difference}``).
    """
    xa, xb, dense = per_seed(runs, a), per_seed(runs, b), per_seed(runs, "dense")
    rows = []
    for key, values in xa.items():
        ref_key = (*key[:4], 0.0) if b_at_dense else key
        seeds, x, ref = stats.paired(values, xb.get(ref_key, {}))
        if not seeds:
            continue
        low, high = stats.t_interval(x - ref)
        # The tolerance scale is the dense return of the very seeds compared, as in the summary.
        dense_of = dense.get((*key[:4], 0.0), {})
        d = [dense_of[s] for s in seeds if s in dense_of]
        rows.append(dict(zip(SETTING, key, strict=True), n=len(seeds), diff=float((x - ref).mean()),
                         low=low, high=high, ref_mean=float(ref.mean()),
                         scale=abs(float(np.mean(d))) if d else np.nan,
                         per_seed=dict(zip(seeds, x - ref, strict=True))))  # fmt: skip
    cols = [*SETTING, "n", "diff", "low", "high", "ref_mean", "scale", "per_seed"]
    return pd.DataFrame(rows, columns=cols)


def pooled_gain(comparison: pd.DataFrame) -> dict[str, float]:
    """Mean over settings of a :func:`compare` table, per seed and in units of the setting's
    ``|dense mean|``, then a t interval over seeds: "on average over sparsities, how much better
    is ``a`` than ``b``" with one number per seed (so seeds stay the unit of replication).

    Only a balanced block is pooled: the settings with at least :data:`MIN_SEEDS` paired seeds,
    over the seeds all of them share. (Averaging each seed over whichever settings it happens to
    have would weigh a partial study's one-seed settings like the rest, and bias the mean.)

    :return: ``n`` (seeds), ``mean``, ``low``, ``high`` (fractions of dense), ``settings``
        (pooled) and ``left_out`` (settings with a zero scale or fewer seeds).
    """
    ok = comparison[(comparison["n"] >= MIN_SEEDS) & np.isfinite(comparison["scale"])
                    & (comparison["scale"] > 0)]  # fmt: skip
    common = set.intersection(*(set(r["per_seed"]) for _, r in ok.iterrows())) if len(ok) else set()
    per = np.array([np.mean([r["per_seed"][s] / r["scale"] for _, r in ok.iterrows()])
                    for s in sorted(common)])  # fmt: skip
    low, high = stats.t_interval(per)
    return {"n": len(per), "mean": float(per.mean()) if per.size else np.nan, "low": low,
            "high": high, "settings": len(ok), "left_out": len(comparison) - len(ok)}  # fmt: skip


# -- figure readings ------------------------------------------------------------------------
def verdicts_of(sub: pd.DataFrame, variant: str, pipeline: bool, tolerance: float,
                paper: bool = False) -> pd.Series:  # fmt: skip
    """Verdict per sparsity (> 0) of one variant of a :func:`nnc4rl.study.results.summarize` table.

    :param paper: against dense at T whatever the variant's length (the paper's comparison),
        instead of the dense network trained as long.
    """
    rows = sub[(sub["variant"] == variant) & (sub["sparsity"] > 0)].sort_values("sparsity")
    return pd.Series([row_verdict(r, pipeline, tolerance, paper) for _, r in rows.iterrows()],
                     index=rows["sparsity"].to_numpy(), dtype=object)  # fmt: skip


def row_verdict(r: pd.Series, pipeline: bool = False, tolerance: float = TOLERANCE,
                paper: bool = False) -> str:  # fmt: skip
    """:func:`loss_verdict` of one :func:`nnc4rl.study.results.summarize` row: against the dense
    network trained as long, or with ``paper`` against dense at T (the paper's comparison)."""
    pre = "paper_" if paper else ""
    return loss_verdict(r[f"{pre}n_paired"], r[f"{pre}diff_t95_low"], r[f"{pre}diff_t95_high"],
                        r[f"{pre}dense_paired_mean"], pipeline, tolerance)  # fmt: skip


def _details(rows: pd.DataFrame, pipeline: bool, tolerance: float) -> str:
    """``0.5: inconclusive (no loss larger than 8.2 % (95 %)); 0.7: ...`` over ``rows``."""
    return "; ".join(f"{r['sparsity']:g}: {row_verdict(r, pipeline, tolerance)} "
                     f"({loss_bound(r['max_loss'])})" for _, r in rows.iterrows())  # fmt: skip


def without_loss_up_to(verdicts: pd.Series) -> float | None:
    """The largest sparsity S such that every measured sparsity up to S is without loss
    (``None`` if the lowest one is not)."""
    best = None
    for s, v in verdicts.sort_index().items():
        if v != WITHOUT_LOSS:
            break
        best = float(s)
    return best


def _verdict_list(verdicts: pd.Series) -> str:
    parts = []
    for name in (WITHOUT_LOSS, INCONCLUSIVE, LOSS, NOT_MEASURABLE):
        at = [s for s, v in verdicts.items() if v == name]
        if at:
            parts.append(f"{name} at {fmt_values(at)}")
    return "; ".join(parts) if parts else "no sparsity measured"


def figure_reading(runs: pd.DataFrame, label: str = "", tolerance: float = TOLERANCE) -> list[str]:
    """The reading of figures 4-6: sentences computed from ``runs`` (one figure's
    :func:`nnc4rl.study.results.load_runs` rows), per env and network.

    :param label: the figure's group label; a pipeline check gets numbers but no verdicts.
    """
    summary = summarize(runs)
    if summary.empty:
        return ["No finished runs: nothing to read."]
    pipeline = is_pipeline_check(label)
    out = []
    if pipeline:
        out.append(f"Pipeline check ({label}): the returns say the code runs end to end, not how "
                   "compression affects a trained agent; no verdict is drawn.")  # fmt: skip
    else:
        out.append(f"Definition: {definition(tolerance)}.")
    for (env, arch, T), sub in summary.groupby(["env", "arch", "T"], sort=True):
        dense = sub[(sub["variant"] == "dense") & (sub["sparsity"] == 0)]
        head = f"{env} ({arch}, T = {T:,}"
        if dense.empty:
            out.append(f"{head}): no dense run, so no paired comparison.")
            continue
        d = dense.iloc[0]
        out.append(f"{head}, {count(d['n_seeds'], 'seed')}): dense {d['mean']:.1f} "
                   f"(95 % t-interval {_fmt_interval(d['t95_low'], d['t95_high'], sign=False)}).")  # fmt: skip
        if pipeline:
            pq = sub[sub["variant"] == "pruned + quantized"]
            if not pq.empty:
                out.append(f"  pruned + quantized ranges from {pq['mean'].min():.1f} to "
                           f"{pq['mean'].max():.1f} over sparsities {fmt_values(pq['sparsity'])}.")  # fmt: skip
            continue
        variants = [v for v in dict.fromkeys(sub["variant"]) if v not in ("dense", "dense, 1.2 T")]
        long_dense = sub[(sub["variant"] == "dense, 1.2 T") & (sub["sparsity"] == 0)]
        if not long_dense.empty:
            r = long_dense.iloc[0]
            out.append(f"  dense fp32 fine-tuned to 1.2 T (the reference of every 1.2 T point): "
                       f"{r['mean']:.1f} ({count(r['n_seeds'], 'seed')}).")  # fmt: skip
        order = ["quantized only", "pruned + quantized", "pruned"]
        for v in [*[o for o in order if o in variants], *[v for v in variants if v not in order]]:
            rows = sub[sub["variant"] == v].sort_values("sparsity")
            ref = rows["reference"].iloc[0]
            if rows["n_paired"].max() == 0:
                out.append(f"  {v}: not measurable against {ref} (no {ref} run of these seeds is "
                           "stored: the dense network of equal training length).")  # fmt: skip
            elif v == "quantized only" or (rows["sparsity"] == 0).all():
                r = rows.iloc[0]
                out.append(f"  {v} vs {ref} (paired): {r['diff_vs_dense']:+.1f} "
                           f"{_fmt_interval(r['diff_t95_low'], r['diff_t95_high'])}: "
                           f"{row_verdict(r, pipeline, tolerance)}; {loss_bound(r['max_loss'])}.")  # fmt: skip
            else:
                out.append(f"  {v} vs {ref} (paired): {_details(rows, pipeline, tolerance)}.")
            if ref != "dense":  # the paper's own comparison, trained 0.2 T longer than dense
                if (rows["sparsity"] > 0).any():
                    paper = _verdict_list(verdicts_of(sub, v, pipeline, tolerance, paper=True))
                else:
                    paper = row_verdict(rows.iloc[0], pipeline, tolerance, paper=True)
                out.append(f"  (the paper's comparison, {v} at 1.2 T vs dense at T, unequal "
                           f"length: {paper}.)")  # fmt: skip
            if v == "pruned + quantized":
                verdicts = verdicts_of(sub, v, pipeline, tolerance)
                up_to = without_loss_up_to(verdicts)
                lowest = verdicts.sort_index()
                if up_to is not None:
                    r = rows[rows["sparsity"] == up_to].iloc[0]
                    out.append(f"  Every sparsity up to {up_to:g} is without loss: nominal ratio "
                               f"{fmt_ratio(r['nominal_ratio'])} (the paper's formula at the measured "
                               f"sparsity of the saved weights), real stored ratio "
                               f"{fmt_ratio(r['real_ratio'])}.")  # fmt: skip
                elif rows["n_paired"].max() == 0:
                    pass  # said above: no reference of equal length
                elif lowest.empty or lowest.iloc[0] == NOT_MEASURABLE:
                    out.append("  Whether pruned + quantized is without loss is not measurable "
                               f"yet: fewer than {MIN_SEEDS} paired seeds of it and {ref} at its "
                               f"lowest sparsity"
                               f"{'' if lowest.empty else f' ({lowest.index[0]:g})'}.")  # fmt: skip
                elif (verdicts == WITHOUT_LOSS).any():
                    # higher sparsities may pass, but "without loss up to X" needs every lower one
                    out.append("  'Without loss up to X' holds for no X: the lowest sparsity "
                               f"is not without loss ({lowest.index[0]:g}: {lowest.iloc[0]}).")  # fmt: skip
                else:
                    out.append("  No sparsity is without loss for pruned + quantized, not even "
                               f"the lowest ({lowest.index[0]:g}: {lowest.iloc[0]}).")  # fmt: skip
        for ref, note in (("pruned, 1.2 T", "equal length"),
                          ("pruned", "the paper's comparison: pruned trained 0.2 T less")):  # fmt: skip
            c = compare(runs[(runs["env"] == env) & (runs["arch"] == arch) & (runs["T"] == T)],
                        "pruned + quantized", ref)  # fmt: skip
            if not c.empty:
                out.append(f"  pruned + quantized vs {ref} (paired, {note}): {_gain_list(c)}.")
    if not pipeline:
        out += [f"  {line}" for line in control_notes(runs, tolerance)]
    return out


PTQ_DROP = 0.10  # a seed whose PTQ return is this much below its fp32 network at T is named


def control_notes(runs: pd.DataFrame, tolerance: float = TOLERANCE) -> list[str]:
    """Sentences on the controls a summary table does not spell out, computed from ``runs``:

    * 4-bit QAT against the equal-length fp32 control of the same sparsity ("pruned, 1.2 T",
      same seeds, trained as long): what 4 bits cost beyond pruning;
    * PTQ int8 against the fp32 network it rounds (at T), seed by seed: the sparsities where a
      seed loses more than :data:`PTQ_DROP`, with the seeds named.
    """
    out = []
    for _, r in compare(runs, "pruned + quantized (int4)", "pruned, 1.2 T").iterrows():
        verdict = loss_verdict(r["n"], r["low"], r["high"], r["ref_mean"], tolerance=tolerance)
        scale = abs(r["ref_mean"])
        bound = (f"a loss of {-r['high'] / scale:.1%} to {-r['low'] / scale:.1%} (95 %)"
                 if verdict == LOSS else loss_bound(max_loss(r["low"], r["ref_mean"])))  # fmt: skip
        out.append(
            f"{r['env']}, sparsity {r['sparsity']:g}: 4-bit QAT minus the same sparsity fine-tuned "
            f"as long without QAT (pruned, 1.2 T; {count(r['n'], 'paired seed')}): "
            f"{r['diff'] / scale:+.1%} {pct_interval(r['low'] / scale, r['high'] / scale)} of it, "
            f"{verdict} ({bound})."
        )
    for env, e in _main_run_rows(runs).groupby("env", sort=True):
        named, fine = [], []
        for s in sorted(e["sparsity"].unique()):
            base, ptq = ("dense", "dense + PTQ int8") if s == 0 else ("pruned", "pruned + PTQ int8")
            at = e[e["sparsity"] == s]
            fp, q = ({int(k): float(v) for k, v in at.loc[at["variant"] == name, ["seed", "return_mean"]].to_numpy()}
                     for name in (base, ptq))  # fmt: skip
            seeds = sorted(set(fp) & set(q))
            if not seeds:
                continue
            rel = {k: (q[k] - fp[k]) / abs(fp[k]) for k in seeds if fp[k]}
            bad = {k: v for k, v in rel.items() if v < -PTQ_DROP}
            if bad:
                who = "seed" if len(bad) == 1 else "seeds"
                verb = "loses" if len(bad) == 1 else "lose"
                named.append(f"at {s:g} {who} {', '.join(map(str, bad))} {verb} "
                             f"{', '.join(f'{-v:.0%}' for v in bad.values())}")  # fmt: skip
            else:
                fine.append(s)
        if named:
            out.append(f"{env}: PTQ int8 (the network at T rounded to 8 bits, no training) keeps "
                       f"every seed within {PTQ_DROP:.0%} of its fp32 return at "
                       f"{fmt_values(fine) or 'no sparsity'}; {'; '.join(named)}.")  # fmt: skip
    return out


def _gain_list(c: pd.DataFrame) -> str:
    better = [r["sparsity"] for _, r in c.iterrows() if r["n"] >= MIN_SEEDS and r["low"] > 0]
    worse = [r["sparsity"] for _, r in c.iterrows() if r["n"] >= MIN_SEEDS and r["high"] < 0]
    measured = [r["sparsity"] for _, r in c.iterrows() if r["n"] >= MIN_SEEDS]
    same = [s for s in measured if s not in better and s not in worse]
    parts = [f"better at {fmt_values(better)}" if better else "",
             f"worse at {fmt_values(worse)}" if worse else "",
             f"no difference shown at {fmt_values(same)}" if same else ""]  # fmt: skip
    text = "; ".join(p for p in parts if p)
    return text or f"fewer than {MIN_SEEDS} paired seeds at every sparsity"


def shared_start(curves: pd.DataFrame) -> dict[tuple, list[list[str]]]:
    """Which runs of a seed really share their start: runs of one seed train identically until
    pruning starts (0.2 T), so their evaluations before it are equal to the last digit when they
    ran on the same platform. Runs trained on different machines differ there: they are pairs in
    name only (the pairing still matches their evaluation episodes, not their training).

    :param curves: :func:`nnc4rl.study.results.load_curves` rows.
    :returns: ``{(env, arch, T, seed): [[run ids], ...]}`` for every seed whose runs fall into
        more than one group of identical pre-pruning evaluations.
    """
    out: dict[tuple, list[list[str]]] = {}
    early = curves[curves["step"] < 0.2 * curves["T"]]
    for key, g in early.groupby(["env", "arch", "T", "seed"], sort=True):
        starts: dict[tuple, list[str]] = {}
        for rid, r in g.sort_values("step").groupby("run_id", sort=True):
            starts.setdefault(tuple(zip(r["step"], r["return_mean"], strict=True)), []).append(rid)
        if len(starts) > 1:
            out[key] = sorted(starts.values(), key=len, reverse=True)
    return out


def provenance_sentence(curves: pd.DataFrame) -> str:
    """One sentence on :func:`shared_start`: which seeds' runs differ before pruning starts."""
    split = shared_start(curves)
    if curves.empty:
        return ""
    if not split:
        return ("Every seed's runs share their start: identical evaluations before pruning "
                "(0.2 T), so same-seed pairs differ only by the compression.")  # fmt: skip
    parts = [f"{env} seed {seed}: {len(groups)} groups of {', '.join(str(len(x)) for x in groups)} "
             "runs" for (env, _, _, seed), groups in split.items()]  # fmt: skip
    return ("Runs of one seed that differ before pruning starts (0.2 T), trained on another "
            f"platform or library version: {'; '.join(parts)}. Those pairs share their seed and evaluation episodes "
            "but not their training, so pairing buys them less.")  # fmt: skip


def figure_labels(profile) -> dict[str, str]:
    """``{figure: label}`` of a :class:`nnc4rl.runs.profiles.Profile`: the label of each figure's
    first (main) group."""
    out: dict[str, str] = {}
    for g in profile.groups:
        out.setdefault(g.figure, g.label)
    return out


__all__ = [
    "MIN_SEEDS",
    "TOLERANCE",
    "compare",
    "count",
    "definition",
    "figure_labels",
    "figure_reading",
    "is_pipeline_check",
    "loss_bound",
    "loss_verdict",
    "per_seed",
    "pooled_gain",
    "row_verdict",
    "provenance_sentence",
    "shared_start",
    "without_loss_up_to",
]

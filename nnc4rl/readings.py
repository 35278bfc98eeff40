"""Readings computed from the run table: every sentence a notebook prints about a result.

**Without loss**, defined once and used everywhere (figures 4-6, supplementary tables, claims):
a compressed setting is *without loss* when the paired (same-seed) difference of its return to
the dense fp32 return at ``T`` has a Student-t 95 % interval whose lower bound lies above
``-TOLERANCE x |dense mean|`` (5 %), over at least :data:`MIN_SEEDS` seeds. It shows a *loss* when
the whole interval lies below that bound, and is *inconclusive* otherwise. It is *not measurable*
for a pipeline-check group (nothing learns at that T) or with fewer than :data:`MIN_SEEDS` seeds.

A claim "up to sparsity S without loss" holds only when every measured sparsity up to S is
without loss, and fails when any of them shows a loss.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nnc4rl import stats
from nnc4rl.results import _main_run_rows, summarize

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
        f"'without loss' = the paired (same-seed) difference to the dense fp32 return at T has a "
        f"Student-t 95 % interval whose lower bound is above -{tolerance:.0%} of |dense mean| "
        f"(at least {MIN_SEEDS} seeds); 'loss' = the whole interval is below that bound; "
        f"otherwise 'inconclusive'"
    )


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


def _pct_interval(low: float, high: float) -> str:
    """``[-3.2%, +12.2%]`` from fractions, or ``(no interval)``."""
    return f"[{low:+.1%}, {high:+.1%}]" if np.isfinite(low) else "(no interval)"


def _fmt_s(values: Iterable[float]) -> str:
    return ", ".join(f"{s:g}" for s in values)


def count(n: int, noun: str) -> str:
    """``"1 seed"``, ``"3 seeds"``: a count with its noun in the right number."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _ratio(x: float) -> str:
    return f"{x:.0f}x" if x >= 10 else f"{x:.1f}x"


# -- paired comparisons between two variants ------------------------------------------------
SETTING = ("figure", "env", "arch", "T", "sparsity")


def per_seed(runs: pd.DataFrame, variant: str) -> dict[tuple, dict[int, float]]:
    """``{(figure, env, arch, T, sparsity): {seed: return}}`` of one variant (main runs kept
    where control runs repeat a point, stale runs left out: as :func:`nnc4rl.results.summarize`).
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
def _verdicts(sub: pd.DataFrame, variant: str, pipeline: bool, tolerance: float) -> pd.Series:
    rows = sub[(sub["variant"] == variant) & (sub["sparsity"] > 0)].sort_values("sparsity")
    return pd.Series(
        [loss_verdict(r["n_paired"], r["diff_t95_low"], r["diff_t95_high"],
                      r["dense_paired_mean"], pipeline, tolerance) for _, r in rows.iterrows()],
        index=rows["sparsity"].to_numpy(), dtype=object,
    )  # fmt: skip


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
            parts.append(f"{name} at {_fmt_s(at)}")
    return "; ".join(parts) if parts else "no sparsity measured"


def figure_reading(runs: pd.DataFrame, label: str = "", tolerance: float = TOLERANCE) -> list[str]:
    """The reading of figures 4-6: sentences computed from ``runs`` (one figure's
    :func:`nnc4rl.results.load_runs` rows), per env and network.

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
                           f"{pq['mean'].max():.1f} over sparsities {_fmt_s(pq['sparsity'])}.")  # fmt: skip
            continue
        variants = [v for v in dict.fromkeys(sub["variant"]) if v != "dense"]
        order = ["quantized only", "pruned + quantized", "pruned"]
        for v in [*[o for o in order if o in variants], *[v for v in variants if v not in order]]:
            rows = sub[sub["variant"] == v].sort_values("sparsity")
            if v == "quantized only" or (rows["sparsity"] == 0).all():
                r = rows.iloc[0]
                verdict = loss_verdict(r["n_paired"], r["diff_t95_low"], r["diff_t95_high"],
                                       r["dense_paired_mean"], pipeline, tolerance)  # fmt: skip
                out.append(f"  {v} vs dense (paired): {r['diff_vs_dense']:+.1f} "
                           f"{_fmt_interval(r['diff_t95_low'], r['diff_t95_high'])}: {verdict}.")  # fmt: skip
                continue
            verdicts = _verdicts(sub, v, pipeline, tolerance)
            out.append(f"  {v} vs dense (paired): {_verdict_list(verdicts)}.")
            if v == "pruned + quantized":
                up_to = without_loss_up_to(verdicts)
                lowest = verdicts.sort_index()
                if up_to is not None:
                    r = rows[rows["sparsity"] == up_to].iloc[0]
                    out.append(f"  Every sparsity up to {up_to:g} is without loss: nominal ratio "
                               f"{_ratio(r['nominal_ratio'])} (the paper's formula at the measured "
                               f"sparsity of the saved weights), real stored ratio "
                               f"{_ratio(r['real_ratio'])}.")  # fmt: skip
                elif lowest.empty or lowest.iloc[0] == NOT_MEASURABLE:
                    out.append("  Whether pruned + quantized is without loss is not measurable "
                               f"yet: fewer than {MIN_SEEDS} paired seeds at its lowest sparsity"
                               f"{'' if lowest.empty else f' ({lowest.index[0]:g})'}.")  # fmt: skip
                elif (verdicts == WITHOUT_LOSS).any():
                    # higher sparsities may pass, but "without loss up to X" needs every lower one
                    out.append("  'Without loss up to X' holds for no X: the lowest sparsity "
                               f"is not without loss ({lowest.index[0]:g}: {lowest.iloc[0]}).")  # fmt: skip
                else:
                    out.append("  No sparsity is without loss for pruned + quantized, not even "
                               f"the lowest ({lowest.index[0]:g}: {lowest.iloc[0]}).")  # fmt: skip
        for ref in ("pruned", "pruned, 1.2 T"):
            c = compare(runs[(runs["env"] == env) & (runs["arch"] == arch) & (runs["T"] == T)],
                        "pruned + quantized", ref)  # fmt: skip
            if not c.empty:
                out.append(f"  pruned + quantized vs {ref} (paired): {_gain_list(c)}.")
    return out


def _gain_list(c: pd.DataFrame) -> str:
    better = [r["sparsity"] for _, r in c.iterrows() if r["n"] >= MIN_SEEDS and r["low"] > 0]
    worse = [r["sparsity"] for _, r in c.iterrows() if r["n"] >= MIN_SEEDS and r["high"] < 0]
    measured = [r["sparsity"] for _, r in c.iterrows() if r["n"] >= MIN_SEEDS]
    same = [s for s in measured if s not in better and s not in worse]
    parts = [f"better at {_fmt_s(better)}" if better else "",
             f"worse at {_fmt_s(worse)}" if worse else "",
             f"no difference shown at {_fmt_s(same)}" if same else ""]  # fmt: skip
    text = "; ".join(p for p in parts if p)
    return text or f"fewer than {MIN_SEEDS} paired seeds at every sparsity"


# -- claims ---------------------------------------------------------------------------------
MUJOCO = ("HalfCheetah-v4", "Hopper-v4", "Walker2d-v4", "Ant-v4", "Humanoid-v4", "Swimmer-v4")
ATARI = ("PongNoFrameskip-v4", "BoxingNoFrameskip-v4", "TutankhamNoFrameskip-v4",
         "CrazyClimberNoFrameskip-v4")  # fmt: skip
PONG_TUT = ("PongNoFrameskip-v4", "TutankhamNoFrameskip-v4")


@dataclass(frozen=True)
class Claim:
    """A headline claim of the paper.

    :param words: the paper's words.
    :param paper: the paper's number.
    :param kind: ``without_loss`` (pruned + quantized at ``sparsity`` and below), ``beats``
        (pruned + quantized vs ``reference``, pooled over sparsities) or ``beats_dense`` (at
        some sparsity).
    :param envs: the envs the claim covers (all must be measured for it to hold).
    """

    words: str
    paper: str
    kind: str
    figure: str | None = None
    arch: str | None = None
    envs: tuple[str, ...] = ()
    sparsity: float | None = None
    reference: str = "pruned"

    @property
    def setting(self) -> str:
        algo = {"fig4": "SAC", "fig5": "DQN Nature CNN", "fig6": "DQN ResNet"}.get(
            self.figure or "", "all"
        )
        envs = ", ".join(e.replace("NoFrameskip-v4", "") for e in self.envs) or "all"
        return f"{algo}: {envs}" if self.figure else "all figures"


CLAIMS = (
    Claim("prune and quantize up to 98 % without loss of quality (all MuJoCo envs except "
          "HalfCheetah)", "98 %, 200x", "without_loss", "fig4", "mlp", MUJOCO[1:], 0.98),
    Claim("Hopper and Swimmer: prune 99 % and quantize without loss", "99 %, 400x",
          "without_loss", "fig4", "mlp", ("Hopper-v4", "Swimmer-v4"), 0.99),
    Claim("even for HalfCheetah we could prune 80 % of the weights and quantize them", "80 %, 20x",
          "without_loss", "fig4", "mlp", ("HalfCheetah-v4",), 0.8),
    Claim("CNN DQN: prune and quantize up to 80 % without loss, all games", "80 %, 20x",
          "without_loss", "fig5", "cnn", ATARI, 0.8),
    Claim("CNN DQN, Pong and Tutankham: up to 95 %", "95 %, '100x' (the formula gives 80x)",
          "without_loss", "fig5", "cnn", PONG_TUT, 0.95),
    Claim("ResNet DQN: up to 95 % without significant loss, all games", "95 %, 80x",
          "without_loss", "fig6", "impala-authors", ATARI, 0.95),
    Claim("ResNet DQN, Pong and Tutankham: up to 98 %", "98 %, 200x", "without_loss", "fig6",
          "impala-authors", PONG_TUT, 0.98),
    Claim("quantization + pruning usually slightly outperforms pruning", "no number", "beats",
          reference="pruned"),
    Claim("... and still does against pruning trained equally long (1.2 T, no QAT): the control "
          "the paper lacks", "no number", "beats", reference="pruned, 1.2 T"),
    Claim("which leads to better results even in comparison to the dense model", "no number",
          "beats_dense", reference="dense"),
)  # fmt: skip


def _combine(per_env: dict[str, str], missing: list[str]) -> str:
    values = set(per_env.values())
    if FAILS in values:
        return FAILS
    if missing or not per_env or NOT_AT_SCALE in values:
        return NOT_AT_SCALE
    return HOLDS if values == {HOLDS} else UNDECIDED


def _without_loss_claim(
    claim: Claim, summary: pd.DataFrame, labels: Mapping[str, str], tolerance: float
) -> tuple[str, str, str]:
    sub = summary[(summary["figure"] == claim.figure) & (summary["arch"] == claim.arch)]
    per_env: dict[str, str] = {}
    ours, why, checked = [], [], False
    for env in claim.envs:
        e = sub[sub["env"] == env]
        if e.empty:
            continue
        short = env.replace("NoFrameskip-v4", "")
        if is_pipeline_check(labels.get(claim.figure, "")):
            per_env[env], checked = NOT_AT_SCALE, True
            why.append(f"{short} is a pipeline check at this profile "
                       f"({labels[claim.figure]})")  # fmt: skip
            continue
        verdicts = _verdicts(e, "pruned + quantized", False, tolerance)
        upto = verdicts[verdicts.index <= claim.sparsity + 1e-9]
        if claim.sparsity not in set(np.round(verdicts.index, 6)):
            per_env[env] = NOT_AT_SCALE
            why.append(f"{short}: sparsity {claim.sparsity:g} was not run")
            continue
        r = e[(e["variant"] == "pruned + quantized") & np.isclose(e["sparsity"], claim.sparsity)]
        r = r.iloc[0]
        scale = abs(r["dense_paired_mean"]) or np.nan
        rel, lo, hi = (r[k] / scale for k in ("diff_vs_dense", "diff_t95_low", "diff_t95_high"))
        ours.append(f"{short}: {rel:+.1%} of dense {_pct_interval(lo, hi)}"
                    f", {count(r['n_paired'], 'seed')}, nominal {_ratio(r['nominal_ratio'])}, real "
                    f"{_ratio(r['real_ratio'])}")  # fmt: skip
        # A measured loss decides the claim even while other sparsities still lack seeds.
        if (upto == LOSS).any():
            per_env[env] = FAILS
            why.append(f"{short}: a loss at {_fmt_s(upto.index[upto == LOSS])}")
        elif (upto == NOT_MEASURABLE).any():
            per_env[env] = NOT_AT_SCALE
            why.append(f"{short}: fewer than {MIN_SEEDS} paired seeds at "
                       f"{_fmt_s(upto.index[upto == NOT_MEASURABLE])}")  # fmt: skip
        elif (upto == WITHOUT_LOSS).all():
            per_env[env] = HOLDS
            why.append(f"{short}: without loss at every sparsity up to {claim.sparsity:g}")
        else:
            per_env[env] = UNDECIDED
            why.append(f"{short}: inconclusive at {_fmt_s(upto.index[upto == INCONCLUSIVE])} "
                       f"(the interval reaches below -{tolerance:.0%} but not wholly)")  # fmt: skip
    missing = [e.replace("NoFrameskip-v4", "") for e in claim.envs if e not in per_env]
    verdict = _combine(per_env, missing)
    if missing:
        why.append(f"not run at this profile: {', '.join(missing)}")
    return (
        "; ".join(ours) or ("pipeline check only" if checked else "not run"),
        verdict,
        ("; ".join(why) + "."),
    )


def _measurable(runs: pd.DataFrame, labels: Mapping[str, str]) -> pd.DataFrame:
    keep = [f for f in runs["figure"].unique() if not is_pipeline_check(labels.get(f, ""))]
    return runs[runs["figure"].isin(keep)]


def _beats_claim(
    claim: Claim, runs: pd.DataFrame, labels: Mapping[str, str], tolerance: float
) -> tuple[str, str, str]:
    usable = _measurable(runs, labels)
    dense_ref = claim.kind == "beats_dense"
    c = compare(usable, "pruned + quantized", claim.reference, b_at_dense=dense_ref)
    c = c[c["sparsity"] > 0]
    skipped = sorted(set(runs["figure"]) - set(usable["figure"]))
    note = f" ({', '.join(skipped)}: pipeline check, left out)" if skipped else ""
    if c.empty:
        ours = "pipeline check only" if skipped else "not run"
        why = f"no paired runs of pruned + quantized and {claim.reference}{note}."
        return ours, NOT_AT_SCALE, why
    if c["n"].max() < MIN_SEEDS:
        ours = f"{count(len(c), 'paired setting')} so far, 1 seed each"
        return ours, NOT_AT_SCALE, (f"fewer than {MIN_SEEDS} paired seeds of pruned + quantized "
                                    f"and {claim.reference}{note}.")  # fmt: skip
    where = ", ".join(sorted({e.replace("NoFrameskip-v4", "") for e in c["env"]}))
    if dense_ref:
        c = c[c["n"] >= MIN_SEEDS]
        # One t-test per setting, Holm-corrected: "better somewhere" must survive having looked
        # at every setting (uncorrected, ~1 in 3 studies of 21 settings with no effect "holds").
        pvalues = [stats.t_pvalue(list(r["per_seed"].values())) for _, r in c.iterrows()]
        rejected = stats.holm(pvalues)
        better = c[rejected & (c["diff"] > 0).to_numpy()]["sparsity"].tolist()
        small = bool((c["high"] < tolerance * c["scale"]).all())
        best = c.loc[(c["diff"] / c["scale"]).idxmax()]
        ours = (f"significantly better at {len(better)} of {len(c)} settings"
                + (f" (sparsity {_fmt_s(better)})" if better else "")
                + f"; largest mean gain {best['diff'] / best['scale']:+.1%} of dense, at sparsity "
                f"{best['sparsity']:g} ({best['env'].replace('NoFrameskip-v4', '')})")  # fmt: skip
        if better:
            return ours, HOLDS, (f"pruned + quantized beats the same seeds' dense run at sparsity "
                                 f"{_fmt_s(better)} in {where} (paired t-tests, Holm-corrected "
                                 f"over the {len(c)} settings tested, family-wise 5 %){note}.")  # fmt: skip
        if small:
            return ours, FAILS, (f"at every sparsity in {where} the interval excludes a gain over "
                                 f"dense of {tolerance:.0%} or more{note}.")  # fmt: skip
        return ours, UNDECIDED, (f"no sparsity in {where} shows a gain over dense after the "
                                 f"correction, and the intervals cannot exclude one of "
                                 f"{tolerance:.0%}{note}.")  # fmt: skip
    g = pooled_gain(c)
    ours = (f"{g['mean']:+.1%} of dense on average over {count(g['settings'], 'setting')} "
            f"{_pct_interval(g['low'], g['high'])}, "
            f"{count(g['n'], 'seed')}")  # fmt: skip
    if g["left_out"]:
        note += f" ({count(g['left_out'], 'setting')} with fewer seeds not pooled)"
    if claim.reference == "pruned":
        note += (" (against pruned at T, as the paper compares: pruned + quantized trained 0.2 T "
                 "longer; the equal-length row controls for that)")  # fmt: skip
    if g["n"] < MIN_SEEDS:
        return ours, NOT_AT_SCALE, (f"fewer than {MIN_SEEDS} seeds common to the settings with "
                                    f"{MIN_SEEDS} or more{note}.")  # fmt: skip
    detail = (f"the per-seed mean gain of pruned + quantized over {claim.reference} (paired, "
              f"sparsities of {where} pooled) has a 95 % t-interval")  # fmt: skip
    if g["low"] > 0:
        return ours, HOLDS, f"{detail} above 0{note}."
    if g["high"] < 0:
        return ours, FAILS, f"{detail} below 0: it is worse{note}."
    return ours, UNDECIDED, f"{detail} that contains 0{note}."


def claims_table(
    runs: pd.DataFrame,
    labels: Mapping[str, str],
    claims: Iterable[Claim] = CLAIMS,
    tolerance: float = TOLERANCE,
) -> pd.DataFrame:
    """One row per headline claim: the paper's words and number, ours with its interval, the
    verdict (holds / does not hold / inconclusive / not measurable at this scale) and why.

    :param runs: :func:`nnc4rl.results.load_runs` rows of a profile (all figures).
    :param labels: ``{figure: label of its main group}``; a pipeline check is not measurable.
    """
    summary = summarize(runs)
    rows = []
    for claim in claims:
        if summary.empty:
            ours, verdict, why = "not run", NOT_AT_SCALE, "no finished runs."
        elif claim.kind == "without_loss":
            ours, verdict, why = _without_loss_claim(claim, summary, labels, tolerance)
        else:
            ours, verdict, why = _beats_claim(claim, runs, labels, tolerance)
        rows.append({"claim": claim.words, "setting": claim.setting, "paper": claim.paper,
                     "ours": ours, "verdict": verdict, "why": why})  # fmt: skip
    return pd.DataFrame(rows)


def figure_labels(profile) -> dict[str, str]:
    """``{figure: label}`` of a :class:`nnc4rl.profiles.Profile`: the label of each figure's
    first (main) group."""
    out: dict[str, str] = {}
    for g in profile.groups:
        out.setdefault(g.figure, g.label)
    return out


__all__ = [
    "CLAIMS",
    "Claim",
    "MIN_SEEDS",
    "TOLERANCE",
    "claims_table",
    "compare",
    "definition",
    "figure_labels",
    "figure_reading",
    "is_pipeline_check",
    "loss_verdict",
    "per_seed",
    "pooled_gain",
    "without_loss_up_to",
]

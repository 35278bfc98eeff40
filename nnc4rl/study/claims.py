"""The paper's headline claims, each put to the test of :mod:`nnc4rl.study.readings` on the run
table: holds, does not hold, inconclusive, or not measurable at this scale, with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nnc4rl.study import stats
from nnc4rl.study.readings import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    LOSS,
    MIN_SEEDS,
    NOT_AT_SCALE,
    NOT_MEASURABLE,
    TOLERANCE,
    UNDECIDED,
    WITHOUT_LOSS,
    compare,
    count,
    fmt_ratio,
    fmt_values,
    is_pipeline_check,
    loss_bound,
    pct_interval,
    pooled_gain,
    verdicts_of,
)
from nnc4rl.study.results import summarize

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
        algo = {"fig4": "SAC", "fig5": "DQN Nature CNN", "fig6": "DQN ResNet", "ppo": "PPO"}.get(
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
    Claim("quantization + pruning usually slightly outperforms pruning (against pruning trained "
          "as long: 1.2 T without QAT)", "no number", "beats", reference="pruned, 1.2 T"),
    Claim("... the paper's comparison: against pruning at T, trained 0.2 T less", "no number",
          "beats", reference="pruned"),
    Claim("which leads to better results even in comparison to the dense model (dense fp32 "
          "trained as long: 1.2 T)", "no number", "beats_dense", reference="dense, 1.2 T"),
    Claim("... the paper's comparison: against dense at T, trained 0.2 T less", "no number",
          "beats_dense", reference="dense"),
    Claim("beyond the paper: does 98 % + int8 hold for PPO's 64 x 64 policy?",
          "not in the paper", "without_loss", "ppo", "mlp", ("Hopper-v4",), 0.98),
)  # fmt: skip
# The figures of the paper's own experiments: the pooled claims ("beats pruning", "beats dense")
# are the paper's, so they pool these only (PPO is ours).
PAPER_FIGURES = ("fig4", "fig5", "fig6")


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
        verdicts = verdicts_of(e, "pruned + quantized", False, tolerance)
        upto = verdicts[verdicts.index <= claim.sparsity + 1e-9]
        if claim.sparsity not in set(np.round(verdicts.index, 6)):
            per_env[env] = NOT_AT_SCALE
            why.append(f"{short}: sparsity {claim.sparsity:g} was not run")
            continue
        r = e[(e["variant"] == "pruned + quantized") & np.isclose(e["sparsity"], claim.sparsity)]
        r = r.iloc[0]
        if r["n_paired"] == 0:
            per_env[env] = NOT_AT_SCALE
            ours.append(f"{short}: no {r['reference']} run stored")
            why.append(f"{short}: no dense fp32 run trained as long ({r['reference']}) is stored")
            continue
        scale = abs(r["dense_paired_mean"]) or np.nan
        rel, lo, hi = (r[k] / scale for k in ("diff_vs_dense", "diff_t95_low", "diff_t95_high"))
        ours.append(f"{short}: {rel:+.1%} of {r['reference']} {pct_interval(lo, hi)}, "
                    f"{loss_bound(r['max_loss'])}, {count(r['n_paired'], 'seed')}, nominal "
                    f"{fmt_ratio(r['nominal_ratio'])}, real {fmt_ratio(r['real_ratio'])}")  # fmt: skip
        # A measured loss decides the claim even while other sparsities still lack seeds.
        if (upto == LOSS).any():
            per_env[env] = FAILS
            why.append(f"{short}: a loss at {fmt_values(upto.index[upto == LOSS])}")
        elif (upto == NOT_MEASURABLE).any():
            per_env[env] = NOT_AT_SCALE
            why.append(f"{short}: fewer than {MIN_SEEDS} paired seeds at "
                       f"{fmt_values(upto.index[upto == NOT_MEASURABLE])}")  # fmt: skip
        elif (upto == WITHOUT_LOSS).all():
            per_env[env] = HOLDS
            why.append(f"{short}: without loss at every sparsity up to {claim.sparsity:g}")
        else:
            per_env[env] = UNDECIDED
            why.append(f"{short}: inconclusive at {fmt_values(upto.index[upto == INCONCLUSIVE])} "
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
    keep = [f for f in runs["figure"].unique()
            if f in PAPER_FIGURES and not is_pipeline_check(labels.get(f, ""))]  # fmt: skip
    return runs[runs["figure"].isin(keep)]


def _beats_claim(
    claim: Claim, runs: pd.DataFrame, labels: Mapping[str, str], tolerance: float
) -> tuple[str, str, str]:
    usable = _measurable(runs, labels)
    dense_ref = claim.kind == "beats_dense"
    c = compare(usable, "pruned + quantized", claim.reference, b_at_dense=dense_ref)
    c = c[c["sparsity"] > 0]
    skipped = sorted(set(runs["figure"]) & set(PAPER_FIGURES) - set(usable["figure"]))
    note = f" ({', '.join(skipped)}: pipeline check, left out)" if skipped else ""
    if c.empty:
        ours = "pipeline check only" if usable.empty and skipped else f"no {claim.reference} runs"
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
        # the largest of many noisy means is no finding: only the corrected tests are reported
        ours = (f"significantly better at {len(better)} of {len(c)} settings"
                + (f" (sparsity {fmt_values(better)})" if better else "")
                + " (paired t-tests, Holm-corrected)")  # fmt: skip
        if better:
            return ours, HOLDS, (f"pruned + quantized beats the same seeds' dense run at sparsity "
                                 f"{fmt_values(better)} in {where} (paired t-tests, Holm-corrected "
                                 f"over the {len(c)} settings tested, family-wise 5 %){note}.")  # fmt: skip
        if small:
            return ours, FAILS, (f"at every sparsity in {where} the interval excludes a gain over "
                                 f"dense of {tolerance:.0%} or more{note}.")  # fmt: skip
        return ours, UNDECIDED, (f"no sparsity in {where} shows a gain over dense after the "
                                 f"correction, and the intervals cannot exclude one of "
                                 f"{tolerance:.0%}{note}.")  # fmt: skip
    g = pooled_gain(c)
    ours = (f"{g['mean']:+.1%} of dense on average over {count(g['settings'], 'setting')} "
            f"{pct_interval(g['low'], g['high'])}, "
            f"{count(g['n'], 'seed')}")  # fmt: skip
    if g["left_out"]:
        note += f" ({count(g['left_out'], 'setting')} with fewer seeds not pooled)"
    if claim.reference == "pruned":
        note += (" (against pruned at T, as the paper compares: pruned + quantized trained 0.2 T "
                 "longer; the row above compares equal lengths)")  # fmt: skip
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

    :param runs: :func:`nnc4rl.study.results.load_runs` rows of a profile (all figures).
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


__all__ = ["ATARI", "CLAIMS", "MUJOCO", "PAPER_FIGURES", "Claim", "claims_table"]

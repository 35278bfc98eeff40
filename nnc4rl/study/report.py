"""The README's "Results" section, computed from a profile's stored runs.

``python -m nnc4rl.report mini`` rewrites the block between :data:`BEGIN` and :data:`END` in
``README.md`` (``make reproduce`` does it for the mini profile), so the numbers a reader sees
first are the shipped data's, and ``tests/test_readme.py`` fails when they drift apart.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from nnc4rl.compress.plan import steps_to_train
from nnc4rl.core.atomic import write_atomic
from nnc4rl.core.config import ConfigError, Parser
from nnc4rl.runs.profiles import FIGURES, Profile, load_profile
from nnc4rl.study.claims import claims_table
from nnc4rl.study.readings import (
    control_notes,
    definition,
    figure_labels,
    is_pipeline_check,
    row_verdict,
)
from nnc4rl.study.results import load_runs, summarize

BEGIN = "<!-- results: generated from the run store by `python -m nnc4rl.report`; do not edit -->"
END = "<!-- results: end -->"
# The main variants of a sparsity, by its name at sparsity 0 and above: fp32 at T, the same
# network rounded to int8 without training, and after 8-bit QAT at 1.2 T.
MAIN = {
    "fp32 at T": ("dense", "pruned"),
    "PTQ int8 at T": ("dense + PTQ int8", "pruned + PTQ int8"),
    "QAT int8 at 1.2 T": ("quantized only", "pruned + quantized"),
}


def _interval(
    mean: float, low: float, high: float, digits: int = 0, sign: bool = False, unit: str = ""
) -> str:
    f = f"{'+' if sign else ''}.{digits}f"
    if not np.isfinite(low):
        return f"{mean:{f}}{unit} (1 seed)"
    return f"{mean:{f}}{unit} [{low:{f}}, {high:{f}}]"


def _relative(r: pd.Series, paper: bool = False) -> str:
    """The paired difference to dense in % of |dense| with its t-interval (``paper``: against
    dense at T whatever the length, the paper's comparison)."""
    pre = "paper_" if paper else ""
    ref = r[f"{pre}dense_paired_mean"]
    scale = abs(ref) / 100 if np.isfinite(ref) and ref else np.nan
    if not np.isfinite(scale) or r[f"{pre}n_paired"] < 1:
        return "n/a"
    return _interval(r[f"{pre}diff_vs_dense"] / scale, r[f"{pre}diff_t95_low"] / scale,
                     r[f"{pre}diff_t95_high"] / scale, 1, sign=True, unit=" %")  # fmt: skip


def _seeds(n: int, r: pd.Series | None) -> str:
    """Seeds of a setting, and how many of them the paired difference uses when fewer."""
    paired = n if r is None else int(r["n_paired"])
    return f"{n}" if paired == n else f"{n} ({paired} paired)"


def _bound(r: pd.Series, pipeline_check: bool) -> str:
    """The "no loss larger than" cell: the largest loss the paired interval leaves possible."""
    return (
        "" if pipeline_check or not np.isfinite(r["max_loss"]) else f"{100 * r['max_loss']:.1f} %"
    )


def _markdown(df: pd.DataFrame) -> str:
    head = "| " + " | ".join(df.columns) + " |"
    rule = "| " + " | ".join("---" for _ in df.columns) + " |"
    body = ["| " + " | ".join(str(v).replace("|", "/") for v in row) + " |" for row in df.values]
    return "\n".join([head, rule, *body])


def sparsity_table(summary: pd.DataFrame, pipeline_check: bool = False) -> pd.DataFrame:
    """Per sparsity of one env: the main variants' mean return with its Student-t 95 % interval;
    each compressed network's paired difference to the dense fp32 network trained as long
    (pruned at T vs dense at T; QAT at 1.2 T vs dense fine-tuned to 1.2 T), the QAT network's
    verdict and the largest loss the data leave possible (none for a pipeline check); the
    paper's own comparison (QAT at 1.2 T vs dense at T); the stored size of the int8 network."""
    rows = []
    for s, g in summary.groupby("sparsity", sort=True):
        by = {r["variant"]: r for _, r in g.iterrows()}
        qat = by.get(MAIN["QAT int8 at 1.2 T"][s > 0])
        fp32 = by.get(MAIN["fp32 at T"][s > 0])
        row = {"sparsity": f"{s:g}", "seeds": _seeds(int(g["n_seeds"].max()), qat)}
        for col, names in MAIN.items():
            r = by.get(names[s > 0])
            row[col] = "" if r is None else _interval(r["mean"], r["t95_low"], r["t95_high"])
        row["pruned - dense, both T"] = "" if fp32 is None or s == 0 else _relative(fp32)
        if qat is None:
            row |= {"QAT int8 - dense 1.2 T": "", "verdict": "", "no loss larger than": "",
                    "paper's: QAT int8 - dense T": "", "stored bytes": "",
                    "ratio real / nominal": ""}  # fmt: skip
        else:
            row |= {"QAT int8 - dense 1.2 T": _relative(qat),
                    "verdict": row_verdict(qat, pipeline_check),
                    "no loss larger than": _bound(qat, pipeline_check),
                    "paper's: QAT int8 - dense T": _relative(qat, paper=True),
                    "stored bytes": f"{qat['compressed_bytes']:,.0f}",
                    "ratio real / nominal": f"{qat['real_ratio']:.1f}x / "
                                            f"{qat['nominal_ratio']:.1f}x"}  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows)


def controls_table(summary: pd.DataFrame, pipeline_check: bool = False) -> pd.DataFrame:
    """Every other variant (the controls: equal-length fine-tuning, 4-bit QAT, PTQ, the dense
    reference at 1.2 T) with its paired difference to the dense network trained as long, its
    verdict and the largest loss the data leave possible."""
    main = {name for names in MAIN.values() for name in names}
    rest = summary[~summary["variant"].isin(main)]
    is_ref = rest["variant"] == rest["reference"]  # dense, 1.2 T: the reference of the 1.2 T rows
    rows = [{"variant": r["variant"], "sparsity": f"{r['sparsity']:g}",
             "seeds": _seeds(int(r["n_seeds"]), None if is_ref[i] else r),
             "return": _interval(r["mean"], r["t95_low"], r["t95_high"]),
             "vs": "" if is_ref[i] else r["reference"],
             "minus it (paired)": "" if is_ref[i] else _relative(r),
             "verdict": "the reference of 1.2 T" if is_ref[i] else row_verdict(r, pipeline_check),
             "no loss larger than": _bound(r, pipeline_check),
             "stored bytes": f"{r['compressed_bytes']:,.0f}"}
            for i, r in rest.sort_values(["variant", "sparsity"]).iterrows()]  # fmt: skip
    return pd.DataFrame(rows)


def _steps_trained(one: pd.DataFrame) -> list[int]:
    """Env steps each run (one row per run) trained: 1.2 T when quantized or extra fine-tuned."""
    extends = one["quantized"].astype(bool) | one["extra_finetune"].astype(bool)
    return [steps_to_train(int(t), bool(e)) for t, e in zip(one["T"], extends, strict=True)]


def compute_used(runs: pd.DataFrame) -> dict[str, float]:
    """Finished runs, env steps trained and the summed wall time of their training and
    evaluation (``wall_time_s``, all attempts of a resumed run)."""
    one = runs.drop_duplicates("run_id")
    steps = sum(_steps_trained(one))
    return {"runs": len(one), "env_steps": steps, "hours": float(one["wall_time_s"].sum()) / 3600}


def other_figures(prof: Profile, runs: pd.DataFrame, figure: str) -> str:
    """One sentence on the profile's figures besides ``figure``: how many of their planned runs
    are stored (``""`` if it has none), so the README says what the other figures rest on."""
    parts = []
    for f in FIGURES:
        groups = [g for g in prof.groups if g.figure == f]
        if f == figure or not groups:
            continue
        stored = runs.loc[runs["figure"] == f, "run_id"].nunique()
        planned = sum(g.n_runs for g in groups)
        titles = "; ".join(g.title for g in groups)
        parts.append(f"{f} ({titles}): {stored} of its {planned} runs are stored")
    if not parts:
        return ""
    return (f"**Other figures.** {'; '.join(parts)}. Their figures and readings are in "
            f"`figures/{prof.name}/` and `notebooks/executed/{prof.name}/`.")  # fmt: skip


def equal_length_status(runs: pd.DataFrame) -> str:
    """One sentence per env on the reference of every 1.2 T point: how many of the dense seeds
    also have a dense fp32 run fine-tuned to 1.2 T (``""`` when all do)."""
    parts = []
    for env, e in runs.groupby("env", sort=True):
        dense = set(e.loc[(e["variant"] == "dense") & (e["sparsity"] == 0), "seed"])
        long = set(e.loc[e["variant"] == "dense, 1.2 T", "seed"])
        if dense - long:
            parts.append(f"{env}: {len(long & dense)} of the {len(dense)} dense seeds")
    if not parts:
        return ""
    return (
        "**Equal-length reference.** A QAT network trains 1.2 T, so its verdict compares it "
        "with dense fp32 fine-tuned to 1.2 T, of the same seeds; stored so far: "
        f"{'; '.join(parts)}. Where it is missing the verdict is 'not measurable' and only the "
        "paper's comparison (against dense at T, 0.2 T shorter) is shown, in its own column."
    )


def results_section(profile: str = "mini", figure: str = "fig4", data=None) -> str:
    """The README block: scale, compute, the key figure, the per-sparsity and control tables,
    and the claims with their verdicts, all computed from the stored runs of ``profile``."""
    prof = load_profile(profile)
    labels = figure_labels(prof)
    runs = load_runs(profile, data=data)
    runs = runs[runs["current"].astype(bool)]
    fig_runs = runs[runs["figure"] == figure]
    planned = sum(g.n_runs for g in prof.select(figure))
    used = compute_used(runs) if not runs.empty else {"runs": 0, "env_steps": 0, "hours": 0.0}
    out = [BEGIN, ""]
    if fig_runs.empty:
        out += [f"No {figure} run of the `{profile}` profile is stored yet.", "", END]
        return "\n".join(out)
    one = fig_runs.drop_duplicates("run_id")
    groups = prof.select(figure)
    Ts = ", ".join(f"{t:,}" for t in sorted(one["T"].unique()))
    # seeds finished per planned setting (0 for a setting not run yet)
    done = one.groupby(["group", "env", "arch", "sparsity"])["seed"].nunique()
    seeds = [int(done.get((g.name, env, arch, float(s)), 0)) for g in groups for env in g.envs
             for arch in g.archs for s in g.sparsities]  # fmt: skip
    have = f"{min(seeds)}" if min(seeds) == max(seeds) else f"{min(seeds)}-{max(seeds)}"
    state = ("complete" if len(one) >= planned else
             f"still running: {len(one)} of its {planned} runs are finished, and its "
             f"{len(seeds)} settings have {have} seeds so far")  # fmt: skip
    trained = sorted(set(_steps_trained(one)))
    out += [
        f"**Scale.** Profile `{profile}`, {figure} ({groups[0].title}): "
        f"{', '.join(sorted(one['env'].unique()))} at T = {Ts} (runs train "
        f"{' or '.join(f'{n:,}' for n in trained)} env steps), sparsities "
        f"{', '.join(f'{s:g}' for s in sorted(one['sparsity'].unique()))}; the study is {state}.",
        "",
        f"**Compute.** {used['runs']} stored runs of the profile, {used['env_steps']:,} env steps, "
        f"{used['hours']:.1f} h of summed run wall time (training and evaluation; a resumed run "
        f"counts every attempt).",
        "",
    ]
    if others := other_figures(prof, runs, figure):
        out += [others, ""]
    out += [
        f"![{figure} at the {profile} profile](figures/{profile}/{figure}_returns.png)",
        "",
        f"Mean return over seeds with its Student-t 95 % interval; the paired difference is in % "
        f"of the same seeds' dense mean. Verdict: {definition()}. Nominal ratio: the paper's "
        f"(32 / bits) / (1 - sparsity) at the sparsity measured on the saved weights (int8 "
        f"rounding adds a few zeros, so it can exceed the formula at the target sparsity); real "
        f"ratio: fp32 bytes / every stored byte (values, indices, biases, scales).",
        "",
    ]
    check = is_pipeline_check(labels.get(figure, ""))
    if line := equal_length_status(fig_runs):
        out += [line, ""]
    for env, e in summarize(fig_runs).groupby("env", sort=True):
        out += [f"*{env}*", "", _markdown(sparsity_table(e, check)), ""]
        controls = controls_table(e, check)
        if not controls.empty:
            out += [f"*{env}, controls and other bit widths*", "", _markdown(controls), ""]
    if not check and (notes := control_notes(fig_runs)):
        out += ["**What the tables leave out.**", "", *[f"- {line}" for line in notes], ""]
    claims = claims_table(runs, labels)[["claim", "paper", "ours", "verdict"]]
    out += ["**The paper's headline claims** (`notebooks/claims.ipynb` gives the reason for "
            "each verdict):", "", _markdown(claims), "", END]  # fmt: skip
    return "\n".join(out)


def update_readme(readme: str | Path, section: str) -> bool:
    """Replace the generated block of ``readme`` with ``section``; returns whether it changed.

    :raises ConfigError: ``readme`` cannot be read or has no generated block.
    """
    path = Path(readme)
    text = _readme_text(path)
    new = _block().sub(lambda _: section, text, count=1)
    if new != text:
        write_atomic(path, new)
    return new != text


def _block() -> re.Pattern:
    return re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)


def _readme_text(path: Path) -> str:
    """The text of ``path``, which must hold the generated block; else one :class:`ConfigError`
    line."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or type(err).__name__
        raise ConfigError(f"--readme {str(path)!r} cannot be read: {reason}") from None
    if not _block().search(text):
        raise ConfigError(f"--readme {str(path)!r} has no generated results block "
                          f"({BEGIN} ... {END})")  # fmt: skip
    return text


def main(argv: list[str] | None = None) -> int:
    """``python -m nnc4rl.report [PROFILE] [--readme FILE] [--data DIR]``; bad input is one
    line, exit 2.

    It acts on the checkout at or above the current folder (its ``README.md`` and ``data/``),
    never on the one nnc4rl happens to be installed from; outside a checkout it needs
    ``--readme``.
    """
    from nnc4rl.runs.store import data_root, find_checkout

    prog = "python -m nnc4rl.report"
    parser = Parser(prog=prog, description=__doc__)
    parser.add_argument("profile", nargs="?", default="mini")
    parser.add_argument("--readme", help="README to update (default: the checkout's)")
    parser.add_argument("--data", help="data folder (default: the checkout's data/ or "
                        "$NNC4RL_DATA)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        checkout = find_checkout()
        if args.readme is None and checkout is None:
            raise ConfigError(
                f"no nnc4rl checkout at or above {str(Path.cwd())!r}: run it inside a checkout, "
                "or give --readme FILE (and --data DIR)"
            )
        args.readme = args.readme or str(checkout / "README.md")
        data = data_root(args.data or (None if os.environ.get("NNC4RL_DATA") or checkout is None
                                       else checkout / "data"))  # fmt: skip
        load_profile(args.profile)  # bad input is refused before any table is computed
        _readme_text(Path(args.readme))
        changed = update_readme(args.readme, results_section(args.profile, data=data))
    except ConfigError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # e.g. a read-only README or a full disk
        print(f"{prog}: error: cannot write {args.readme!r}: {err.strerror or err}",
              file=sys.stderr)  # fmt: skip
        return 2
    print(f"{args.readme}: results section {'updated' if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

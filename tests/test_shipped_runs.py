"""The shipped results hold up: a few of the `mini` study's stored policies, put back into a
plain SB3 model, play their paired evaluation episodes and get the returns the run reported:
exactly where this machine computes the same floating-point bits as the one that made the run,
else within a stated tolerance (the reason is in ``nnc4rl.runs.numerics``)."""

from __future__ import annotations

import json
import math
import statistics
import warnings
from pathlib import Path

import pytest

from nnc4rl.core.envs import make_envs
from nnc4rl.export import load_artifact, weights_into_sb3
from nnc4rl.runs.evaluation import evaluate_returns
from nnc4rl.runs.numerics import platform_record
from nnc4rl.runs.runner import build_model
from nnc4rl.runs.spec import RunSpec, make_plan, resolve
from nnc4rl.runs.store import data_root

PROFILE = "mini"
# Where the bits differ every episode is a fresh trajectory, so the two sets of paired returns
# are like two independent draws of the policy's return: their means may differ by this many
# standard errors of the difference (a normal draw exceeds 4 with probability 6e-5), while a
# wrong policy (another mask, scale or sign) moves the mean by far more.
REPLAY_Z = 4.0


def shipped_policies(profile: str = PROFILE) -> list[Path]:
    """Run folders of ``profile`` that keep ``policy.npz``, least to most compressed."""
    folders = [p.parent for p in (data_root() / "runs" / profile).glob("*/policy.npz")]

    def compression(folder: Path) -> tuple:
        s = json.loads((folder / "summary.json").read_text())
        return (s["target_sparsity"], -s["bits"], s["seed"], folder.name)

    return sorted(folders, key=compression)


def _checked() -> list[Path]:
    """Per env: the least and the most compressed run and one between, and the most compressed
    run that records its machine's fingerprint (exact wherever this machine matches it)."""
    by_env: dict[str, list[Path]] = {}
    for f in shipped_policies():
        by_env.setdefault(json.loads((f / "summary.json").read_text())["env"], []).append(f)
    picks = []
    for runs in by_env.values():
        picks += [runs[i] for i in sorted({0, len(runs) // 2, len(runs) - 1})]
        recorded = [f for f in runs if "platform" in json.loads((f / "summary.json").read_text())]
        picks += recorded[-1:]
    return list(dict.fromkeys(picks))


def test_the_study_ships_policies():
    assert shipped_policies(), f"no data/runs/{PROFILE}/*/policy.npz is shipped"


@pytest.mark.parametrize("folder", _checked(), ids=lambda p: p.name)
def test_a_shipped_policy_replays_its_reported_returns(folder):
    summary = json.loads((folder / "summary.json").read_text())
    spec, hyper = resolve(RunSpec(**json.loads((folder / "run.json").read_text())["spec"]))
    art = load_artifact(folder / "policy.npz")
    final = summary["eval"]["qat_end"]
    assert art.sparsity() == pytest.approx(final["measured_sparsity"], abs=1e-6)
    env, eval_env = make_envs(spec.env, spec.seed, spec.n_envs)
    eval_env.close()
    try:
        model = weights_into_sb3(art, build_model(spec, hyper, env, make_plan(spec, hyper)))
    finally:
        env.close()
    returns = evaluate_returns(model, spec, len(summary["eval_seeds"]))
    # Exact: the artifact's codes * scale are the weights the run baked and evaluated, and the
    # episodes are reset with the same seeds (a float-rounding difference would show here).
    if returns == final["returns"]:
        return
    made = summary.get("platform", {}).get("fingerprint")
    here = platform_record(summary["env"])["fingerprint"]
    assert made != here, "this machine computes the run's bits, yet the returns differ"
    differ = sorted(k for k in here if made is not None and made.get(k) != here[k])
    why = f"{', '.join(differ)} results differ" if made else "the run predates the record"
    warnings.warn(f"{folder.name}: replayed within {REPLAY_Z:g} standard errors, not exactly "
                  f"({why} on this machine)", stacklevel=1)  # fmt: skip
    stored = final["returns"]
    diff = statistics.fmean(returns) - statistics.fmean(stored)
    se = math.sqrt((statistics.variance(returns) + statistics.variance(stored)) / len(stored))
    assert abs(diff) <= REPLAY_Z * se, (diff, se, returns, stored)


def _least_and_most_compressed() -> list[Path]:
    runs = shipped_policies()
    return list(dict.fromkeys(runs[:1] + runs[-1:]))


@pytest.mark.parametrize("folder", _least_and_most_compressed(), ids=lambda p: p.name)
def test_the_full_integer_policy_of_a_shipped_run_keeps_its_return(folder):
    """int8 activations (int16 input codes), calibrated as `nnc4rl export --integer` does (on
    the first three of the run's paired evaluation episodes, which are then scored with the
    rest), play those episodes: the return stays within the tolerance that defines "without
    loss" (nnc4rl.study.readings) of the trained network's."""
    from nnc4rl.study.closed_loop import closed_loop_row
    from nnc4rl.study.readings import TOLERANCE

    summary = json.loads((folder / "summary.json").read_text())
    final = summary["eval"]["qat_end"]
    row = closed_loop_row(folder, final["returns"], summary["eval_seeds"], summary["env"],
                          summary["seed"])  # fmt: skip
    assert abs(row["integer_minus_trained"]) <= TOLERANCE * abs(row["trained_return"]), row

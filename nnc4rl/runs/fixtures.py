"""Valid run-folder documents (:mod:`nnc4rl.runs.schema`) that tests, and anyone writing a store
by hand, start from: change one field and the schema check names it."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

from nnc4rl.runs.schema import EVAL_COLUMNS, PTQ_POINT, SCHEMA_VERSION
from nnc4rl.runs.schema import run_id as store_run_id


def _size(fp32: int, nnz: int, params: int, bits: int) -> dict[str, Any]:
    density = max(nnz, 1) / params
    compressed = max(1, round(fp32 * density * bits / 32))
    return {
        "fp32_bytes": fp32,
        "compressed_bytes": compressed,
        "nominal_ratio": (32 / bits) / density,
        "real_ratio": fp32 / compressed,
    }


def make_summary_fixture(
    *,
    target_sparsity: float = 0.5,
    seed: int = 0,
    quantized: bool = True,
    bits: int = 8,
    extra_finetune: bool = False,
    ptq_bits: tuple[int, ...] = (),
    T: int = 100,
    episodes: int = 2,
    returns: dict[str, list[float]] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A valid ``summary.json`` (schema :data:`SCHEMA_VERSION`) of a small SAC Hopper run.

    :param returns: per point, the episode returns (default: ``10 + seed`` at every point).
    :param overrides: top-level fields replaced last (e.g. ``env="Walker2d-v4"``).
    """
    params, fp32 = 1000, 4400
    nnz = round(params * (1 - target_sparsity))
    qbits = bits if quantized else 32
    total = -(-6 * T // 5) if quantized or extra_finetune else T
    points = {"finetune_end": (T, "finetune" if target_sparsity > 0 else "dense", 32)}
    if quantized:
        points["qat_end"] = (total, "qat", bits)
    if extra_finetune:
        points["extra_finetune_end"] = (total, "finetune", 32)
    for b in ptq_bits:
        points[f"ptq{b}"] = (T, points["finetune_end"][1], b)
    returns = returns or {}
    evals = {}
    for name, (step, phase, b) in points.items():
        r = [float(x) for x in returns.get(name, [10.0 + seed] * episodes)]
        mean = sum(r) / len(r)
        evals[name] = {
            "step": step,
            "phase": phase,
            "mean": mean,
            "std": math.sqrt(sum((x - mean) ** 2 for x in r) / len(r)),
            "episodes": len(r),
            "returns": r,
            "measured_sparsity": target_sparsity,
            "params": params,
            "nnz": nnz,
            "size": _size(fp32, nnz, params, b),
            "network_sha256": f"{seed:02d}{name}".ljust(64, "0")[:64],
        }
    hyper = {
        "sb3": {"learning_starts": 10},
        "compression": {"n_events": 10},
        "evaluation": {"eval_freq": 50, "eval_episodes": episodes}
        | ({"ptq_bits": list(ptq_bits)} if ptq_bits else {}),
    }
    summary = {
        "schema": SCHEMA_VERSION,
        "algo": "sac",
        "env": "Hopper-v4",
        "arch": "mlp",
        "seed": seed,
        "target_sparsity": float(target_sparsity),
        "distribution": "erdos_renyi",
        "quantized": quantized,
        "bits": qbits,
        "extra_finetune": extra_finetune,
        "T": T,
        "total_steps": total,
        "n_envs": 1,
        "threads": 1,
        "device": "cpu",
        "wall_time_s": 1.0,
        "measured_sparsity": float(target_sparsity),
        "network_sha256": evals["qat_end" if quantized else "finetune_end"]["network_sha256"],
        "layer_sparsity": {"latent_pi.0": float(target_sparsity)},
        "size": _size(fp32, nnz, params, qbits),
        "size_layers": [],
        "eval_seeds": [seed + 10_000 + i for i in range(episodes)],
        "eval": evals,
        "plan": {"T": T, "final_sparsity": float(target_sparsity), "quantize": quantized},
        "hyperparameters": hyper,
        "overrides": {},
        "versions": {"nnc4rl": "0.0.0"},
    }
    summary.update(copy.deepcopy(overrides))
    return summary


def curve_csv(summary: dict[str, Any]) -> str:
    """An ``evaluations.csv`` for ``summary``: one row per training evaluation point and one at
    every multiple of ``eval_freq`` below ``total_steps`` (as the runner writes it)."""
    every = (summary["hyperparameters"].get("evaluation") or {}).get("eval_freq") or (
        summary["T"] // 2)  # fmt: skip
    rows = {s: ("pruning", 1.0) for s in range(every, summary["total_steps"], every)}
    for name, p in summary["eval"].items():
        if not PTQ_POINT.match(name):
            rows[p["step"]] = (p["phase"], p["mean"])
    lines = [",".join(EVAL_COLUMNS)]
    episodes = len(summary["eval_seeds"])
    lines += [f"{s},{ph},{m!r},0.0,{episodes}" for s, (ph, m) in sorted(rows.items())]
    return "\n".join(lines) + "\n"


def make_run_fixture(
    summary: dict[str, Any] | None = None,
    *,
    run_id: str | None = None,
    profile: str = "smoke",
    group: str = "mujoco",
    figure: str = "fig4",
    **summary_kw: Any,
) -> dict[str, bytes]:
    """The files of a valid finished run folder, ``{name: bytes}`` (``RunStore.commit`` input).

    :param summary: the summary (default: :func:`make_summary_fixture` of ``summary_kw``).
    :param run_id: the folder name (default: built from the summary's settings).
    """
    s = summary if summary is not None else make_summary_fixture(**summary_kw)
    key = {
        "algo": s["algo"],
        "env": s["env"],
        "arch": s["arch"],
        "sparsity": float(s["target_sparsity"]),
        "distribution": s["distribution"],
        "quantize": s["quantized"],
        "bits": s["bits"],
        "extra_finetune": s["extra_finetune"],
        "seed": s["seed"],
        "T": s["T"],
        "hyperparameters": s["hyperparameters"],
    }
    rid = run_id or store_run_id(key)  # the id the store gives this key
    meta = {
        "schema": SCHEMA_VERSION,
        "run_id": rid,
        "profile": profile,
        "group": group,
        "figure": figure,
        "key": key,
        "spec": {"algo": s["algo"], "env": s["env"], "steps": s["T"], "seed": s["seed"]},
    }
    return {
        "run.json": (json.dumps(meta, indent=2) + "\n").encode(),
        "summary.json": (json.dumps(s, indent=2) + "\n").encode(),
        "evaluations.csv": curve_csv(s).encode(),
    }

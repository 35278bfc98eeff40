"""Writing a finished run: ``summary.json`` and ``evaluations.csv`` (schema:
:mod:`nnc4rl.runs.schema`), measured from the saved ``model.zip``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from nnc4rl.compress.plan import TrainingPlan
from nnc4rl.runs.schema import EVAL_COLUMNS, SCHEMA_VERSION, validate_summary
from nnc4rl.runs.spec import RunSpec


def _file_sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def value_function_note(algo: str, model) -> str | None:
    """What compressing a PPO / A2C policy did to its value function (``None`` for the others):
    its own layers stay dense; a *shared* features extractor with weights (a CNN policy) is
    pruned and quantized with the action path, so the value head reads compressed features."""
    from nnc4rl.compress.algos import algo_by_name
    from nnc4rl.compress.pruning import prunable_layers

    if not algo_by_name(algo).on_policy:
        return None
    policy = model.policy
    if not prunable_layers(policy.features_extractor):
        return "dense: the value branch is not compressed (the features extractor has no weights)"
    if policy.share_features_extractor:
        return ("its own layers are dense, but it reads the shared features extractor, which is "
                "pruned (and quantized) with the action path")  # fmt: skip
    return "dense: the value branch and its own features extractor are not compressed"


def write_summary(
    spec: RunSpec, hyper: dict[str, Any], plan: TrainingPlan, run, model, folder: Path,
    wall: float, final: str,
) -> dict[str, Any]:  # fmt: skip
    """Measure the saved ``folder/model.zip``, check it is the network evaluated last (point
    ``final``) and write ``summary.json`` and ``evaluations.csv`` into ``folder``.

    :param run: the runner's state (evaluation points and learning-curve rows).
    :param wall: training wall time in seconds.
    :returns: the summary.
    """
    import stable_baselines3
    import torch

    from nnc4rl.compress.measure import measure_model_zip
    from nnc4rl.core import __version__
    from nnc4rl.runs.numerics import platform_record

    measured = measure_model_zip(
        folder / "model.zip", spec.bits if spec.quantize else None, spec.algo
    )
    if run.points[final]["measured"]["network_sha256"] != measured["network_sha256"]:
        raise RuntimeError("the saved model differs from the last evaluated network")
    summary = {
        "schema": SCHEMA_VERSION,
        "algo": spec.algo,
        "env": spec.env,
        "arch": spec.arch,
        "seed": spec.seed,
        "target_sparsity": float(spec.sparsity),
        "distribution": spec.distribution,
        "quantized": spec.quantize,
        "bits": spec.bits if spec.quantize else 32,
        "extra_finetune": spec.extra_finetune,
        "T": spec.steps,
        "total_steps": int(model.num_timesteps),
        "n_envs": spec.n_envs,
        "threads": spec.threads,
        "device": spec.device,
        "wall_time_s": wall,
        "measured_sparsity": measured["measured_sparsity"],
        "network_sha256": measured["network_sha256"],
        "layer_sparsity": measured["layer_sparsity"],
        "size": measured["size"],
        "size_layers": measured["size_layers"],
        "eval_seeds": run.evaluator.seeds,
        # each evaluation point with the size of the network evaluated there (fp32 at T)
        "eval": {
            name: {f: p["row"][f] for f in ("step", "phase", "mean", "std", "episodes", "returns")}
            | {
                f: p["measured"][f]
                for f in ("measured_sparsity", "params", "nnz", "size", "network_sha256")
            }  # fmt: skip
            for name, p in sorted(run.points.items(), key=lambda kv: kv[1]["row"]["step"])
        },
        "plan": plan.to_dict(),
        "hyperparameters": hyper,
        "overrides": spec.overrides,
        "versions": {
            "nnc4rl": __version__,
            "stable_baselines3": stable_baselines3.__version__,
            "torch": torch.__version__,
        },
        # where a replay of the saved policy is bit-exact (tests/test_shipped_runs.py)
        "platform": platform_record(spec.env),
    }
    if "quantization" in measured:
        summary["quantization"] = measured["quantization"]
    if spec.init_model is not None:
        summary["input_model"] = {
            "file": Path(spec.init_model).name,
            "sha256": _file_sha256(Path(spec.init_model)),
            "trained_steps": run.trained_steps,
        }
    note = value_function_note(spec.algo, model)
    if note is not None:
        summary["value_function"] = note
    validate_summary(summary)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    csv_text = io.StringIO()
    writer = csv.DictWriter(csv_text, fieldnames=EVAL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(run.evaluator.rows)
    (folder / "evaluations.csv").write_text(csv_text.getvalue())
    return summary

"""The run folder's schema, shared by the writer (``nnc4rl.runs.runner``), the reader
(``nnc4rl.study.results``), the run store and the fixtures (:mod:`nnc4rl.runs.fixtures`).

A finished run folder holds

* ``summary.json`` (schema version :data:`SCHEMA_VERSION`): the run's settings and what was
  measured, with one entry per *evaluation point* under ``eval``, and ``platform``, the machine's
  floating-point fingerprint (``nnc4rl.runs.numerics``; absent in runs made before it was recorded);
* ``evaluations.csv``: every deterministic evaluation of the run (columns :data:`EVAL_COLUMNS`),
  the learning curve;
* ``run.json``: the run's key in the store (:data:`RUN_FIELDS`);
* optionally ``policy.npz``: the deployment artifact (``nnc4rl/export/FORMAT.md``).

Evaluation points (:func:`point_bits`, :func:`variant`):

=======================  ========  ==================================================
point                    step      network evaluated
=======================  ========  ==================================================
``finetune_end``         T         fp32, end of fine-tuning (always present)
``qat_end``              1.2 T     after QAT at ``bits`` bits (quantized runs)
``extra_finetune_end``   1.2 T     fp32, fine-tuned T..1.2 T without QAT (control runs)
``ptq<b>``               T         the network at T rounded to ``b`` bits, no training
``input``                0         the trained dense model ``nnc4rl compress`` started from
=======================  ========  ==================================================

This module imports only the standard library (``policy.npz`` is checked with
``nnc4rl.export.load_artifact``, imported when a folder has one), so reading a store needs
neither gymnasium, Stable-Baselines3, MuJoCo nor ALE.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from nnc4rl.core.config import ConfigError

SCHEMA_VERSION = 2
EVAL_COLUMNS = ("step", "phase", "mean", "std", "episodes")
POINTS = ("finetune_end", "qat_end", "extra_finetune_end", "input")
PTQ_POINT = re.compile(r"^ptq(?P<bits>[2-8])$")
REQUIRED_FILES = ("run.json", "summary.json", "evaluations.csv")

# Field types. ``float`` accepts JSON integers too (``json`` writes ``1`` for an int-valued
# number computed as int); ``int`` never accepts a bool or a float.
SIZE_FIELDS: dict[str, type] = {
    "fp32_bytes": int,
    "compressed_bytes": int,
    "nominal_ratio": float,
    "real_ratio": float,
}
POINT_FIELDS: dict[str, type] = {
    "step": int,
    "phase": str,
    "mean": float,
    "std": float,
    "episodes": int,
    "returns": list,
    "measured_sparsity": float,
    "params": int,
    "nnz": int,
    "size": dict,
    "network_sha256": str,  # of the evaluated network's tensors: equal means bit-identical
}
SUMMARY_FIELDS: dict[str, type] = {
    "schema": int,
    "algo": str,
    "env": str,
    "arch": str,
    "seed": int,
    "target_sparsity": float,
    "distribution": str,
    "quantized": bool,
    "bits": int,
    "extra_finetune": bool,
    "T": int,
    "total_steps": int,
    "n_envs": int,
    "threads": int,
    "device": str,
    "wall_time_s": float,
    "measured_sparsity": float,
    "network_sha256": str,
    "layer_sparsity": dict,
    "size": dict,
    "size_layers": list,
    "eval_seeds": list,
    "eval": dict,
    "plan": dict,
    "hyperparameters": dict,
    "overrides": dict,
    "versions": dict,
}
# input_model: the trained model.zip that `nnc4rl compress` started from (file name, SHA-256,
# the env steps it had been trained); value_function: what compressing PPO / A2C did to it
OPTIONAL_SUMMARY_FIELDS: dict[str, type] = {"quantization": dict, "platform": dict,
                                            "input_model": dict, "value_function": str}  # fmt: skip
RUN_FIELDS: dict[str, type] = {
    "schema": int,
    "run_id": str,
    "profile": str,
    "group": str,
    "figure": str,
    "key": dict,
    "spec": dict,
}
KEY_FIELDS: dict[str, type] = {
    "algo": str,
    "env": str,
    "arch": str,
    "sparsity": float,
    "distribution": str,
    "quantize": bool,
    "bits": int,
    "extra_finetune": bool,
    "seed": int,
    "T": int,
    "hyperparameters": dict,
}


class CorruptRunError(ConfigError):
    """A run folder that exists but is not a readable finished run (one-line message)."""


class _Bad(Exception):
    """What is wrong with one file (turned into a :class:`CorruptRunError` naming the folder)."""


def _type_ok(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _check_fields(d: Any, fields: dict[str, type], where: str, optional: dict | None = None):
    if not isinstance(d, dict):
        raise _Bad(f"{where} is {type(d).__name__}, not an object")
    missing = [k for k in fields if k not in d]
    if missing:
        more = f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        raise _Bad(f"{where} lacks {', '.join(missing[:4])}{more}")
    for k, kind in (fields | (optional or {})).items():
        if k in d and not _type_ok(d[k], kind):
            raise _Bad(f"{where}.{k}={_short(d[k])} is not of type {kind.__name__}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def point_bits(point: str, bits: int) -> int:
    """Bit width of the network evaluated at ``point`` of a run quantized to ``bits``
    (32 for fp32 points).

    :param point: ``finetune_end``, ``qat_end``, ``extra_finetune_end`` or ``ptq<b>``.
    :param bits: the run's QAT bits (32 if not quantized).
    """
    m = PTQ_POINT.match(point)
    if m:
        return int(m["bits"])
    if point == "qat_end":
        return bits
    if point in POINTS:
        return 32
    raise ValueError(f"point={point!r} is unknown: use {', '.join(POINTS)} or ptq<bits>")


def variant(sparsity: float, point: str, bits: int = 8) -> str:
    """The paper's name of an evaluation point.

    ``finetune_end`` -> "dense" / "pruned"; ``qat_end`` -> "quantized only" / "pruned +
    quantized" (with " (int4)" etc. when ``bits`` != 8); ``extra_finetune_end`` -> "dense, 1.2 T" /
    "pruned, 1.2 T"; ``ptq<b>`` -> "dense + PTQ int<b>" / "pruned + PTQ int<b>".

    :param sparsity: the run's target sparsity (0: dense).
    :param point: the evaluation point's name.
    :param bits: the run's QAT bits (used by ``qat_end`` only).
    """
    base = "pruned" if sparsity > 0 else "dense"
    m = PTQ_POINT.match(point)
    if m:
        return f"{base} + PTQ int{m['bits']}"
    if point == "qat_end":
        name = "pruned + quantized" if sparsity > 0 else "quantized only"
        return name if bits == 8 else f"{name} (int{bits})"
    if point == "extra_finetune_end":
        return f"{base}, 1.2 T"
    if point == "finetune_end":
        return base
    if point == "input":
        return "input model"
    raise ValueError(f"point={point!r} is unknown: use {', '.join(POINTS)} or ptq<bits>")


def expected_points(summary: dict[str, Any]) -> set[str]:
    """The evaluation points a summary must hold, from its settings (``ptq<b>`` for every
    ``b`` in ``hyperparameters.evaluation.ptq_bits``)."""
    points = {"finetune_end"}
    if summary.get("quantized"):
        points.add("qat_end")
    if summary.get("extra_finetune"):
        points.add("extra_finetune_end")
    if summary.get("input_model"):
        points.add("input")
    ptq = ((summary.get("hyperparameters") or {}).get("evaluation") or {}).get("ptq_bits") or []
    points |= {f"ptq{b}" for b in ptq}
    return points


def _validate_summary(d: Any) -> None:
    _check_fields(d, SUMMARY_FIELDS, "summary", OPTIONAL_SUMMARY_FIELDS)
    if d["schema"] != SCHEMA_VERSION:
        raise _Bad(f"summary schema {d['schema']!r} is not {SCHEMA_VERSION}")
    _check_fields(d["size"], SIZE_FIELDS, "summary.size")
    if not all(_type_ok(s, int) for s in d["eval_seeds"]) or not d["eval_seeds"]:
        raise _Bad(f"summary.eval_seeds={_short(d['eval_seeds'])} is not a list of integers")
    names = set(d["eval"])
    unknown = sorted(p for p in names if p not in POINTS and not PTQ_POINT.match(p))
    if unknown:
        raise _Bad(f"summary.eval has unknown point(s) {', '.join(unknown)}")
    missing = sorted(expected_points(d) - names)
    if missing:
        raise _Bad(f"summary.eval lacks point(s) {', '.join(missing)}")
    for name, point in d["eval"].items():
        where = f"summary.eval.{name}"
        _check_fields(point, POINT_FIELDS, where)
        _check_fields(point["size"], SIZE_FIELDS, f"{where}.size")
        returns = point["returns"]
        if not all(_type_ok(r, float) for r in returns):
            raise _Bad(f"{where}.returns holds a non-number")
        if len(returns) != point["episodes"] or len(d["eval_seeds"]) != point["episodes"]:
            raise _Bad(
                f"{where}: {len(returns)} returns and {len(d['eval_seeds'])} eval seeds for "
                f"{point['episodes']} episodes"
            )


def validate_summary(d: Any) -> None:
    """Check a ``summary.json`` dict against schema version :data:`SCHEMA_VERSION`.

    :raises CorruptRunError: one line saying which field is missing or has the wrong type.
    """
    try:
        _validate_summary(d)
    except _Bad as err:
        raise CorruptRunError(str(err)) from None


def _validate_csv(text: str, steps: set[int]) -> int:
    """Check ``evaluations.csv``; returns its number of rows."""
    if not text.endswith("\n"):
        raise _Bad("evaluations.csv is truncated (no final newline)")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(rows[0]) != EVAL_COLUMNS:
        got = ",".join(rows[0]) if rows else "nothing"
        raise _Bad(f"evaluations.csv has columns {got!r}, not {','.join(EVAL_COLUMNS)!r}")
    seen = set()
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(EVAL_COLUMNS):
            raise _Bad(f"evaluations.csv line {i} has {len(row)} fields, not {len(EVAL_COLUMNS)}")
        try:
            step, episodes = int(row[0]), int(row[4])
            float(row[2]), float(row[3])
        except ValueError:
            raise _Bad(f"evaluations.csv line {i} is not step,phase,mean,std,episodes") from None
        if not row[1] or episodes < 1 or step < 0:
            raise _Bad(f"evaluations.csv line {i} is not step,phase,mean,std,episodes")
        seen.add(step)
    lost = sorted(steps - seen)
    if lost:  # a file cut at a line boundary loses the last evaluations
        raise _Bad(f"evaluations.csv lacks the evaluation at step {lost[0]}")
    return len(rows) - 1


def _validate_run_json(meta: Any, rid: str) -> None:
    _check_fields(meta, RUN_FIELDS, "run.json")
    if meta["schema"] != SCHEMA_VERSION:
        raise _Bad(f"run.json schema {meta['schema']!r} is not {SCHEMA_VERSION}")
    if meta["run_id"] != rid:
        raise _Bad(f"run.json names another run ({meta['run_id']!r})")
    _check_fields(meta["key"], KEY_FIELDS, "run.json.key")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _Bad(f"{path.name} is invalid JSON ({str(err).splitlines()[0]})") from None


def validate_run_folder(folder: str | Path, run_id: str | None = None) -> dict[str, Any]:
    """Check that ``folder`` is a complete finished run: ``run.json``, ``summary.json`` (schema),
    ``evaluations.csv`` (columns, row types, and a row at each point's step: a file cut short is
    caught) and ``policy.npz`` when present (it must load as a deployment artifact).

    :param run_id: the run id ``run.json`` must name (default: the folder's name; a folder
        still under a temporary name is checked against the id it will get).
    :returns: ``{"run": run.json, "summary": summary.json}`` as dicts.
    :raises CorruptRunError: one line naming the folder and what is wrong.
    :raises FileNotFoundError: if ``folder`` does not exist.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(folder)
    try:
        for name in REQUIRED_FILES:
            if not (folder / name).is_file():
                raise _Bad(f"{name} is missing")
        meta = _read_json(folder / "run.json")
        _validate_run_json(meta, run_id or folder.name)
        summary = _read_json(folder / "summary.json")
        _validate_summary(summary)
        # the evaluations of the training curve: every point but the PTQ ones (no training)
        steps = {int(p["step"]) for n, p in summary["eval"].items() if not PTQ_POINT.match(n)}
        try:
            text = (folder / "evaluations.csv").read_text()
        except UnicodeDecodeError:
            raise _Bad("evaluations.csv is not text") from None
        _validate_csv(text, steps)
        if (folder / "policy.npz").exists():
            _check_policy(folder / "policy.npz")
    except _Bad as err:
        raise CorruptRunError(f"run folder {folder} is corrupt: {err}") from None
    return {"run": meta, "summary": summary}


def _check_policy(path: Path) -> None:
    from nnc4rl.export.artifact import ArtifactError, load_artifact  # numpy + torch only

    try:
        load_artifact(path)
    except ArtifactError as err:
        line = str(err).strip().splitlines()[0] if str(err).strip() else "unreadable"
        raise _Bad(f"policy.npz does not load ({line})") from None

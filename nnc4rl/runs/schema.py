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
import hashlib
import io
import json
import math
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
# ``files``: {name: sha256 hex} of every other file of the folder, written by the store since it
# was added (older runs lack it and are checked by their contents alone).
OPTIONAL_RUN_FIELDS: dict[str, type] = {"files": dict}
# A store-made id ends in 10 hex digits of the key's hash (:func:`run_id`).
STORE_ID = re.compile(r"-[0-9a-f]{10}$")
# run.json's key field -> the summary field that must hold the same value.
KEY_IN_SUMMARY = {"algo": "algo", "env": "env", "arch": "arch", "sparsity": "target_sparsity",
                  "distribution": "distribution", "quantize": "quantized", "bits": "bits",
                  "extra_finetune": "extra_finetune", "seed": "seed", "T": "T",
                  "hyperparameters": "hyperparameters"}  # fmt: skip
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


def run_id(key: dict[str, Any]) -> str:
    """A readable, stable id: ``sac-Hopper-v4-mlp-s0.90-q8-T600-seed0-<10 hex of sha256>``
    (``ft`` instead of ``fp32`` marks an equal-length fine-tuning control run). A namespaced env
    id (``ALE/Pong-v5``) gives ``ALE-Pong-v5``: an id is one folder name, never a path."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    weights = f"q{key['bits']}" if key["quantize"] else "fp32"
    if key.get("extra_finetune"):
        weights += "-ft"
    env = key["env"].replace("NoFrameskip", "").replace("/", "-").replace("\\", "-")
    return (
        f"{key['algo']}-{env}-{key['arch']}-s{key['sparsity']:.2f}-{weights}-T{key['T']}"
        f"-seed{key['seed']}-{digest}"
    )


def file_digest(data: bytes) -> str:
    """The sha256 hex of a run file's bytes, as ``run.json``'s ``files`` records it."""
    return hashlib.sha256(data).hexdigest()


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
        for field in ("mean", "std", "measured_sparsity"):
            if not math.isfinite(point[field]):
                raise _Bad(f"{where}.{field} is {point[field]!r}, not a finite number")
        if not all(math.isfinite(r) for r in returns):
            raise _Bad(f"{where}.returns holds a non-finite number")
        if len(returns) != point["episodes"] or len(d["eval_seeds"]) != point["episodes"]:
            raise _Bad(
                f"{where}: {len(returns)} returns and {len(d['eval_seeds'])} eval seeds for "
                f"{point['episodes']} episodes"
            )
        mean = math.fsum(returns) / len(returns)
        std = math.sqrt(math.fsum((r - mean) ** 2 for r in returns) / len(returns))
        scale = max(1.0, abs(mean))  # numpy sums in another order: a rounding tolerance
        if abs(mean - point["mean"]) > 1e-6 * scale or abs(std - point["std"]) > 1e-5 * scale:
            raise _Bad(
                f"{where}: mean {point['mean']!r} / std {point['std']!r} are not those of its "
                f"returns ({mean!r} / {std!r})"
            )
    for field in ("measured_sparsity", "wall_time_s"):
        if not math.isfinite(d[field]):
            raise _Bad(f"summary.{field} is {d[field]!r}, not a finite number")


def validate_summary(d: Any) -> None:
    """Check a ``summary.json`` dict against schema version :data:`SCHEMA_VERSION`.

    :raises CorruptRunError: one line saying which field is missing or has the wrong type.
    """
    try:
        _validate_summary(d)
    except _Bad as err:
        raise CorruptRunError(str(err)) from None


def _validate_csv(text: str, summary: dict[str, Any]) -> int:
    """Check ``evaluations.csv`` against ``summary``: a row at each training point's step with
    that point's mean, and (one env: the steps are known) exactly one row at every multiple of
    ``eval_freq`` below ``total_steps``, so a deleted row is caught; returns its number of rows."""
    # the evaluations of the training curve: every point but the PTQ ones (no training)
    points = {int(p["step"]): p for n, p in summary["eval"].items() if not PTQ_POINT.match(n)}
    steps = set(points)
    if not text.endswith("\n"):
        raise _Bad("evaluations.csv is truncated (no final newline)")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(rows[0]) != EVAL_COLUMNS:
        got = ",".join(rows[0]) if rows else "nothing"
        raise _Bad(f"evaluations.csv has columns {got!r}, not {','.join(EVAL_COLUMNS)!r}")
    seen: dict[int, float] = {}
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(EVAL_COLUMNS):
            raise _Bad(f"evaluations.csv line {i} has {len(row)} fields, not {len(EVAL_COLUMNS)}")
        try:
            step, episodes = int(row[0]), int(row[4])
            mean, std = float(row[2]), float(row[3])
        except ValueError:
            raise _Bad(f"evaluations.csv line {i} is not step,phase,mean,std,episodes") from None
        if not row[1] or episodes < 1 or step < 0:
            raise _Bad(f"evaluations.csv line {i} is not step,phase,mean,std,episodes")
        if not (math.isfinite(mean) and math.isfinite(std)):
            raise _Bad(f"evaluations.csv line {i} holds a non-finite mean or std")
        if step in seen:
            raise _Bad(f"evaluations.csv line {i} repeats step {step}")
        seen[step] = mean
    lost = sorted(steps - set(seen))
    if lost:  # a file cut at a line boundary loses the last evaluations
        raise _Bad(f"evaluations.csv lacks the evaluation at step {lost[0]}")
    for step, point in sorted(points.items()):
        if seen[step] != point["mean"]:
            raise _Bad(f"evaluations.csv has mean {seen[step]!r} at step {step}, the summary "
                       f"{point['mean']!r}")  # fmt: skip
    every = (summary["hyperparameters"].get("evaluation") or {}).get("eval_freq")
    if summary["n_envs"] == 1 and isinstance(every, int) and every >= 1:
        periodic = set(range(every, summary["total_steps"], every)) | steps
        if set(seen) != periodic:
            odd = sorted(set(seen) ^ periodic)[0]
            what = "lacks the evaluation" if odd in periodic else "has an unexpected row"
            raise _Bad(f"evaluations.csv {what} at step {odd} (eval_freq {every})")
    return len(rows) - 1


def _validate_run_json(meta: Any, rid: str) -> None:
    _check_fields(meta, RUN_FIELDS, "run.json", OPTIONAL_RUN_FIELDS)
    if meta["schema"] != SCHEMA_VERSION:
        raise _Bad(f"run.json schema {meta['schema']!r} is not {SCHEMA_VERSION}")
    if meta["run_id"] != rid:
        raise _Bad(f"run.json names another run ({meta['run_id']!r})")
    _check_fields(meta["key"], KEY_FIELDS, "run.json.key")
    # a store-made id is the hash of the key: an edited key (or a folder renamed) shows here
    if STORE_ID.search(rid) and run_id(meta["key"]) != rid:
        raise _Bad(f"run.json's key gives the id {run_id(meta['key'])!r}, not the folder's")


def _validate_against_key(summary: dict[str, Any], key: dict[str, Any]) -> None:
    """The summary must describe the run its key (and so its id) names."""
    for k, s in KEY_IN_SUMMARY.items():
        if summary[s] != key[k]:
            shown = "differs" if k == "hyperparameters" else f"is {_short(summary[s])}"
            raise _Bad(f"summary.{s} {shown}, run.json's key says {_short(key[k])}")


def _validate_files(folder: Path, manifest: Any) -> None:
    """Every file ``run.json`` records is there with its recorded sha256, and no other."""
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in manifest.items()):
        raise _Bad("run.json.files is not a mapping of file names to sha256")
    present = {p.name for p in folder.iterdir() if p.name != "run.json"}
    for name in sorted(set(manifest) | present):
        if name not in manifest:
            raise _Bad(f"{name} is not one of the files run.json records")
        if name not in present:
            raise _Bad(f"{name} is missing (run.json records it)")
        if file_digest((folder / name).read_bytes()) != manifest[name]:
            raise _Bad(f"{name} is not the file written with the run (its sha256 differs)")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _Bad(f"{path.name} is invalid JSON ({str(err).splitlines()[0]})") from None


def validate_run_folder(
    folder: str | Path, run_id: str | None = None, expect_policy: bool = False
) -> dict[str, Any]:
    """Check that ``folder`` is a complete finished run, the one its name says: ``run.json``
    (its id, and for a store-made id the hash of its key), ``summary.json`` (schema, finite
    numbers, means that are those of the returns, and the settings of run.json's key),
    ``evaluations.csv`` (columns, row types, finite values, the summary's mean at each point's
    step and every periodic evaluation: a file cut short or a row deleted is caught),
    ``policy.npz`` when present (it must load as a deployment artifact of this run's algo, env,
    arch, seed and bits) and the sha256 of every file when run.json records them (``files``).
    The one check of a finished folder: the store, the sweep and every reader use it.

    :param run_id: the run id ``run.json`` must name (default: the folder's name; a folder
        still under a temporary name is checked against the id it will get).
    :param expect_policy: the run's group keeps policies: a quantized run lacking
        ``policy.npz`` is corrupt.
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
        _validate_against_key(summary, meta["key"])
        try:
            text = (folder / "evaluations.csv").read_text()
        except UnicodeDecodeError:
            raise _Bad("evaluations.csv is not text") from None
        _validate_csv(text, summary)
        if (folder / "policy.npz").exists():
            _check_policy(folder / "policy.npz", summary)
        elif expect_policy and summary["quantized"]:
            raise _Bad("policy.npz is missing (its group keeps the policies of quantized runs)")
        if "files" in meta:  # last: what the checks above miss, the sha256 catches
            _validate_files(folder, meta["files"])
    except _Bad as err:
        raise CorruptRunError(f"run folder {folder} is corrupt: {err}") from None
    return {"run": meta, "summary": summary}


def _check_policy(path: Path, summary: dict[str, Any]) -> None:
    from nnc4rl.export.artifact import ArtifactError, load_artifact  # numpy + torch only

    try:
        art = load_artifact(path)
    except ArtifactError as err:
        line = str(err).strip().splitlines()[0] if str(err).strip() else "unreadable"
        raise _Bad(f"policy.npz does not load ({line})") from None
    # the artifact records the run it was built from (``info``): another run's file shows here
    for field in ("algo", "env", "arch", "seed"):
        if field in art.info and art.info[field] != summary[field]:
            raise _Bad(f"policy.npz is another run's ({field} {_short(art.info[field])}, the "
                       f"run's {_short(summary[field])})")  # fmt: skip
    if art.bits != summary["bits"]:
        raise _Bad(f"policy.npz has {art.bits}-bit weights, the run {summary['bits']}")
    # the network evaluated last (qat_end) is the artifact's: where it counts the same weights,
    # it has the same non-zeros (a policy swapped between seeds or sparsities differs here)
    final = summary["eval"].get("qat_end")
    params = sum(layer.codes.size for layer in art.layers)
    nnz = sum(layer.nnz for layer in art.layers)
    if final is not None and params == final["params"] and nnz != final["nnz"]:
        raise _Bad(f"policy.npz has {nnz} non-zero weights, the run's network {final['nnz']}: "
                   "it is another run's")  # fmt: skip

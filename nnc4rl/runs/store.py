"""The run store: ``data/runs/<profile>/<run id>/`` holds one finished run.

A run is identified by everything that changes its result (algo, env, arch, sparsity,
distribution, quantize, bits, the equal-length control, seed, T and the resolved
hyperparameters): their canonical JSON is hashed into a stable id. A run folder holds (schema:
:mod:`nnc4rl.runs.schema`)

* ``summary.json`` and ``evaluations.csv`` - written by :func:`nnc4rl.runs.runner.train`;
* ``run.json`` - the run's key, its id, profile, group and figure;
* ``policy.npz`` - only when the group keeps policies and the run is quantized: the compressed
  network (SAC actor / DQN Q-network) as the deployment artifact of ``nnc4rl/export/FORMAT.md``
  (``nnc4rl.export.load_policy`` runs it). ``model.zip`` (critics, optimizer state) and replay
  buffers are never kept, so ``data/`` stays small enough for git.

A folder appears under its id only once complete (:func:`nnc4rl.core.atomic.atomic_dir`) and only
after :func:`nnc4rl.runs.schema.validate_run_folder` accepts it, so a folder named by its id is a
finished run; one that fails validation later (damaged by hand or by a disk) is *corrupt* and the
next sweep recomputes it. While a run trains, its checkpoint lives beside the runs in the hidden
folder ``.<id>.checkpoint`` (when the worker sees the store), so a killed sweep continues it.
Training happens in a worker (:func:`execute`) that returns the files as bytes, so a Ray worker
needs no shared filesystem.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnc4rl.core.atomic import atomic_dir, partial_prefix, remove_dead_partials, write_atomic
from nnc4rl.runs.schema import (
    REQUIRED_FILES,
    SCHEMA_VERSION,
    CorruptRunError,
    file_digest,
    run_id,
    validate_run_folder,
)

if TYPE_CHECKING:  # the runner pulls in SB3; reading a store must not
    from nnc4rl.runs.spec import RunSpec

__all__ = ["REQUIRED_FILES", "CorruptRunError", "RunStore", "RunTask", "execute", "run_id",
           "run_key", "data_root", "repo_root", "find_checkout", "checkpoint_dir", "store_visible"]  # fmt: skip

STORE_ID = ".store-id"


def find_checkout(start: str | Path | None = None) -> Path | None:
    """The first folder at or above ``start`` (default: the cwd) that holds ``pyproject.toml``
    and ``nnc4rl/`` (a checkout of this project), or ``None``."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "nnc4rl").is_dir():
            return folder
    return None


def repo_root(start: str | Path | None = None) -> Path:
    """The repository root: :func:`find_checkout` of ``start``; else the folder above the
    installed package (for reading; a command that rewrites files uses :func:`find_checkout`)."""
    return find_checkout(start) or Path(__file__).resolve().parents[1]


def data_root(data: str | Path | None = None) -> Path:
    """``data`` if given, else ``$NNC4RL_DATA``, else ``<repo root>/data``."""
    return Path(data or os.environ.get("NNC4RL_DATA") or repo_root() / "data")


@dataclass(frozen=True)
class RunTask:
    """One run of a profile: its resolved spec, hyperparameters, key and id.

    :param train_steps: env steps the run trains (``TrainingPlan.total_steps``).
    :param checkpoint_every: env steps between checkpoints (``None``: the runner's default);
        not part of the key, since it does not change the result.
    """

    profile: str
    group: str
    figure: str
    spec: RunSpec
    hyper: dict[str, Any]
    key: dict[str, Any]
    run_id: str
    keep_policy: bool
    train_steps: int
    checkpoint_every: int | None = None


def run_key(spec: RunSpec, hyper: dict[str, Any]) -> dict[str, Any]:
    """Everything that changes a run's result (``spec`` must be resolved: ``arch`` set)."""
    return {
        "algo": spec.algo,
        "env": spec.env,
        "arch": spec.arch,
        "sparsity": float(spec.sparsity),
        "distribution": spec.distribution,
        "quantize": bool(spec.quantize),
        "bits": int(spec.bits) if spec.quantize else 32,
        "extra_finetune": bool(getattr(spec, "extra_finetune", False)),
        "seed": int(spec.seed),
        "T": int(spec.steps),
        "hyperparameters": hyper,
    }


def checkpoint_dir(root: str | Path, rid: str) -> Path:
    """Where the run ``rid`` of the store at ``root`` keeps its checkpoint while it trains."""
    return Path(root) / f".{rid}.checkpoint"


class RunStore:
    """The run folders of one profile under ``root`` (``data/runs/<profile>``)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, rid: str) -> Path:
        return self.root / rid

    def checkpoint(self, rid: str) -> Path:
        """The checkpoint folder of run ``rid`` (exists only while the run is unfinished)."""
        return checkpoint_dir(self.root, rid)

    def identity(self) -> str:
        """A random id written once into ``<root>/.store-id``: a worker that reads the same id
        there sees this store (same machine or a shared filesystem)."""
        marker = self.root / STORE_ID
        try:
            return marker.read_text().strip()
        except FileNotFoundError:
            self.root.mkdir(parents=True, exist_ok=True)
            write_atomic(marker, uuid.uuid4().hex + "\n")
            return marker.read_text().strip()

    def run_ids(self) -> list[str]:
        """Names of the run folders (finished or corrupt). Hidden temporary entries and empty
        folders (a stray ``mkdir``: no run, nothing to read) are left out."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and p.name[0] != "." and any(p.iterdir()))  # fmt: skip

    def check(self, rid: str, expect_policy: bool = False) -> dict[str, Any]:
        """The ``run.json`` of a finished run.

        :param expect_policy: the run's group keeps policies (a quantized run needs
            ``policy.npz``).
        :raises CorruptRunError: one line naming the folder and what is wrong, if the folder
            exists but is not a complete finished run (:func:`nnc4rl.runs.schema.validate_run_folder`).
        :raises FileNotFoundError: if it does not exist (an empty folder counts as missing).
        """
        folder = self.path(rid)
        if folder.is_dir() and not any(folder.iterdir()):
            raise FileNotFoundError(folder)
        return validate_run_folder(folder, expect_policy=expect_policy)["run"]

    def status(self, rid: str, expect_policy: bool = False) -> tuple[str, str]:
        """``("done", "")``, ``("missing", "")`` or ``("corrupt", reason)``."""
        try:
            self.check(rid, expect_policy)
        except FileNotFoundError:
            return "missing", ""
        except CorruptRunError as err:
            return "corrupt", str(err)
        return "done", ""

    def clean_partials(self) -> list[Path]:
        """Remove temporary folders left by killed writers (whose process is gone)."""
        return remove_dead_partials(self.root)

    def commit(self, rid: str, files: dict[str, bytes], force: bool = False) -> bool:
        """Write ``files`` as the run ``rid`` atomically, after checking them with
        :func:`nnc4rl.runs.schema.validate_run_folder` (invalid files raise
        :class:`CorruptRunError` and leave the store untouched).

        :returns: False if a finished run was already there (written concurrently) and ``force``
            is off; a corrupt folder, or any folder when ``force``, is replaced.
        """
        if not force and self.status(rid, "policy.npz" in files)[0] == "done":
            return False
        with atomic_dir(self.path(rid), replace=True) as tmp:
            for name, data in files.items():
                (tmp / name).write_bytes(data)
            try:
                validate_run_folder(tmp, run_id=rid)
            except CorruptRunError as err:  # name the folder it was to become
                raise CorruptRunError(str(err).replace(str(tmp), str(self.path(rid)))) from None
        return True


def _policy_artifact(run_folder: Path) -> bytes:
    """The run's compressed network as a deployment artifact (``nnc4rl/export/FORMAT.md``)."""
    from nnc4rl.export import artifact_from_path, save_artifact

    save_artifact(artifact_from_path(run_folder), run_folder / "policy.npz")
    return (run_folder / "policy.npz").read_bytes()


def store_visible(root: str | Path | None, identity: str | None) -> bool:
    """Whether the store at ``root`` with id ``identity`` (:meth:`RunStore.identity`) is the one
    this process sees (the driver's own machine, or a shared filesystem)."""
    if root is None or identity is None:
        return False
    try:
        return (Path(root) / STORE_ID).read_text().strip() == identity
    except OSError:
        return False


def execute(
    task: RunTask, store_root: str | Path | None = None, store_id: str | None = None
) -> dict[str, bytes]:
    """Train ``task`` and return the run folder's files as ``{name: bytes}`` for
    :meth:`RunStore.commit` (checked against the schema first).

    The run always resumes from its checkpoint if there is one. The checkpoint is kept in the
    store (``<store_root>/.<id>.checkpoint``) when this process sees the store (``store_id``
    matches), so a killed or retried run continues where it stopped; otherwise (a Ray node
    without the store) in a temporary folder, and a retried run restarts cleanly.

    :param store_root: the store's folder as the driver sees it.
    :param store_id: the store's :meth:`RunStore.identity`.
    """
    from nnc4rl.runs.spec import spec_fields

    shared = store_visible(store_root, store_id)
    # The work folder is a partial entry (``.<id>.partial-<pid>-work*``): in the store when this
    # process sees it, else in the temporary folder; whichever way this worker dies (SIGKILL
    # included), the next sweep (:meth:`RunStore.clean_partials`) or the next attempt here
    # removes it once this process is gone.
    where = Path(store_root) if shared else Path(tempfile.gettempdir())
    remove_dead_partials(where, task.run_id)
    target = where / task.run_id
    work = Path(tempfile.mkdtemp(prefix=partial_prefix(target) + "work-", dir=where))
    ckpt = checkpoint_dir(store_root, task.run_id) if shared else work / "checkpoint"
    try:
        out = work / "run"
        _train_or_restart(task, out, ckpt)
        meta = {
            "schema": SCHEMA_VERSION,
            "run_id": task.run_id,
            "profile": task.profile,
            "group": task.group,
            "figure": task.figure,
            "key": task.key,
            "spec": spec_fields(task.spec),
        }
        files = {
            "run.json": (json.dumps(meta, indent=2) + "\n").encode(),
            "summary.json": (out / "summary.json").read_bytes(),
            "evaluations.csv": (out / "evaluations.csv").read_bytes(),
        }
        if task.keep_policy and task.spec.quantize:  # only a quantized network has an artifact
            files["policy.npz"] = _policy_artifact(out)
        # the sha256 of every file: a file damaged, edited or swapped later is named by the check
        meta["files"] = {name: file_digest(data) for name, data in sorted(files.items())
                         if name != "run.json"}  # fmt: skip
        files["run.json"] = (json.dumps(meta, indent=2) + "\n").encode()
        check = work / task.run_id  # a run the writer got wrong fails here, not in the store
        check.mkdir()
        for name, data in files.items():
            (check / name).write_bytes(data)
        validate_run_folder(check, expect_policy=task.keep_policy)
        return files
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _train_or_restart(task: RunTask, out: Path, ckpt: Path) -> None:
    """Train ``task`` into ``out``, continuing from the checkpoint ``ckpt`` if there is one; a
    checkpoint that cannot be resumed (damaged, or not written by this store) is removed and
    the run restarts from scratch, so it never fails every sweep."""
    from nnc4rl.runs.checkpoint import CheckpointError
    from nnc4rl.runs.runner import train

    def run() -> None:
        train(task.spec, out, progress=False, checkpoint_every=task.checkpoint_every,
              resume=True, checkpoint_dir=ckpt)  # fmt: skip

    try:
        run()
    except CheckpointError:
        if not ckpt.exists():
            raise
        shutil.rmtree(ckpt, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        run()

"""The run store: ``data/runs/<profile>/<run id>/`` holds one finished run.

A run is identified by everything that changes its result (algo, env, arch, sparsity,
distribution, quantize, bits, seed, T and the resolved hyperparameters): their canonical JSON is
hashed into a stable id. A run folder holds

* ``summary.json`` and ``evaluations.csv`` - written by :func:`nnc4rl.runner.train`;
* ``run.json`` - the run's key, its id, profile, group and figure;
* ``policy.npz`` - only when the group keeps policies and the run is quantized: the compressed
  network (SAC actor / DQN Q-network) as the deployment artifact of ``nnc4rl/export/FORMAT.md``
  (``nnc4rl.export.load_policy`` runs it). ``model.zip`` (critics, optimizer state) and replay
  buffers are never kept, so ``data/`` stays small enough for git.

Writes are atomic: files go into a hidden ``.<id>.partial-<pid>-*`` folder that is renamed when
complete, so a folder named by its id is always a finished run. Training happens in a worker
(:func:`execute`) that returns the files as bytes, so a Ray worker needs no shared filesystem.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nnc4rl.config import ConfigError
from nnc4rl.runner import RunSpec

REQUIRED_FILES = ("run.json", "summary.json", "evaluations.csv")
PARTIAL = re.compile(r"^\.(?P<id>.+)\.partial-(?P<pid>\d+)-")


class CorruptRunError(ConfigError):
    """A run folder that exists but is not a readable finished run (one-line message)."""


def repo_root(start: str | Path | None = None) -> Path:
    """The repository root: the first folder at or above ``start`` (default: the cwd) that holds
    ``pyproject.toml`` and ``nnc4rl/``; else the folder above the installed package."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "nnc4rl").is_dir():
            return folder
    return Path(__file__).resolve().parents[1]


def data_root(data: str | Path | None = None) -> Path:
    """``data`` if given, else ``$NNC4RL_DATA``, else ``<repo root>/data``."""
    return Path(data or os.environ.get("NNC4RL_DATA") or repo_root() / "data")


@dataclass(frozen=True)
class RunTask:
    """One run of a profile: its resolved spec, hyperparameters, key and id."""

    profile: str
    group: str
    figure: str
    spec: RunSpec
    hyper: dict[str, Any]
    key: dict[str, Any]
    run_id: str
    keep_policy: bool
    train_steps: int


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
        "seed": int(spec.seed),
        "T": int(spec.steps),
        "hyperparameters": hyper,
    }


def run_id(key: dict[str, Any]) -> str:
    """A readable, stable id: ``sac-Hopper-v4-mlp-s0.90-q8-T600-seed0-<10 hex of sha256>``."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    weights = f"q{key['bits']}" if key["quantize"] else "fp32"
    env = key["env"].replace("NoFrameskip", "")
    return (
        f"{key['algo']}-{env}-{key['arch']}-s{key['sparsity']:.2f}-{weights}-T{key['T']}"
        f"-seed{key['seed']}-{digest}"
    )


class RunStore:
    """The run folders of one profile under ``root`` (``data/runs/<profile>``)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, rid: str) -> Path:
        return self.root / rid

    def check(self, rid: str) -> dict[str, Any]:
        """The ``run.json`` of a finished run; raises :class:`CorruptRunError` (one line naming
        the folder and what is wrong) if the folder exists but is not a finished run, and
        ``FileNotFoundError`` if it does not exist."""
        folder = self.path(rid)
        if not folder.is_dir():
            raise FileNotFoundError(folder)
        for name in REQUIRED_FILES:
            if not (folder / name).is_file():
                raise CorruptRunError(f"run folder {folder} is corrupt: {name} is missing")
        try:
            meta = json.loads((folder / "run.json").read_text())
            json.loads((folder / "summary.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CorruptRunError(f"run folder {folder} is corrupt: invalid JSON ({err})") from None
        if not isinstance(meta, dict) or meta.get("run_id") != rid:
            raise CorruptRunError(f"run folder {folder} is corrupt: run.json names another run")
        return meta

    def status(self, rid: str) -> tuple[str, str]:
        """``("done", "")``, ``("missing", "")`` or ``("corrupt", reason)``."""
        try:
            self.check(rid)
        except FileNotFoundError:
            return "missing", ""
        except CorruptRunError as err:
            return "corrupt", str(err)
        return "done", ""

    def clean_partials(self) -> list[Path]:
        """Remove temporary folders left by killed writers (whose process is gone)."""
        removed = []
        if not self.root.is_dir():
            return removed
        for entry in self.root.iterdir():
            m = PARTIAL.match(entry.name)
            if m and entry.is_dir() and not _alive(int(m["pid"])):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
        return removed

    def commit(self, rid: str, files: dict[str, bytes], force: bool = False) -> bool:
        """Write ``files`` as the run ``rid`` atomically; returns False if a finished run was
        already there (written concurrently) and ``force`` is off. A corrupt folder, or any
        folder when ``force``, is replaced."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{rid}.partial-{os.getpid()}-", dir=self.root))
        try:
            for name, data in files.items():
                (tmp / name).write_bytes(data)
            final = self.path(rid)
            if final.exists():
                if self.status(rid)[0] == "done" and not force:
                    shutil.rmtree(tmp)
                    return False
                old = Path(
                    tempfile.mkdtemp(prefix=f".{rid}.partial-{os.getpid()}-old-", dir=self.root)
                )
                os.replace(final, old / "run")
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return True


def _alive(pid: int) -> bool:
    """Whether process ``pid`` is running (a zombie, killed but not yet reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def _policy_artifact(run_folder: Path) -> bytes:
    """The run's compressed network as a deployment artifact (``nnc4rl/export/FORMAT.md``)."""
    from nnc4rl.export import artifact_from_path, save_artifact

    save_artifact(artifact_from_path(run_folder), run_folder / "policy.npz")
    return (run_folder / "policy.npz").read_bytes()


def execute(task: RunTask, scratch: str | Path | None = None) -> dict[str, bytes]:
    """Train ``task`` in a temporary folder (under ``scratch`` if it exists) and return the run
    folder's files as ``{name: bytes}`` for :meth:`RunStore.commit`."""
    from nnc4rl.runner import train

    base = Path(scratch) if scratch is not None and Path(scratch).is_dir() else None
    tmp = Path(tempfile.mkdtemp(prefix=f".{task.run_id}.partial-{os.getpid()}-", dir=base))
    try:
        out = tmp / "run"
        train(task.spec, out, progress=False)
        meta = {
            "run_id": task.run_id,
            "profile": task.profile,
            "group": task.group,
            "figure": task.figure,
            "key": task.key,
            "spec": asdict(task.spec),
        }
        files = {
            "run.json": (json.dumps(meta, indent=2) + "\n").encode(),
            "summary.json": (out / "summary.json").read_bytes(),
            "evaluations.csv": (out / "evaluations.csv").read_bytes(),
        }
        if task.keep_policy and task.spec.quantize:  # only a quantized network has an artifact
            files["policy.npz"] = _policy_artifact(out)
        return files
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

"""Building the exported C on the host and calling it from Python: the compiler and its strict
flags, a shared library, its flash / RAM footprint, and :class:`CPolicy` (ctypes), which tests and
benchmarks hold against the numpy reference."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from nnc4rl.export.c_export import DEFAULT_PREFIX
from nnc4rl.export.inference import Policy
from nnc4rl.export.model import Artifact, ArtifactError


def compiler() -> str:
    """The system C compiler (``$CC``, else ``cc`` / ``gcc``)."""
    for name in (os.environ.get("CC"), "cc", "gcc"):
        if name and shutil.which(name):
            return name
    raise ArtifactError("no C compiler found: set CC or install gcc")


STRICT_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Wpedantic", "-Werror"]
C_FLAGS = [*STRICT_FLAGS, "-O2", "-ffp-contract=off"]


def compile_shared(c_path: str | Path, so_path: str | Path, cc: str | None = None) -> Path:
    """Compile the exported source into a shared library (for tests and benchmarks)."""
    so_path = Path(so_path)
    cmd = [cc or compiler(), *C_FLAGS, "-shared", "-fPIC", "-o", str(so_path), str(c_path), "-lm"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise ArtifactError(f"{cmd[0]} failed on {c_path}: {res.stderr.strip().splitlines()[:1]}")
    return so_path


def footprint(c_path: str | Path, opt: str = "-Os") -> dict[str, int]:
    """Flash and static RAM of the compiled policy (host ``size`` of an ``-Os`` object file).

    ``flash`` = text (code + const weights) + data; ``ram`` = data + bss (activation buffers);
    the stack adds a few hundred bytes (the output array of ``PREFIX_act``).
    """
    with tempfile.TemporaryDirectory() as tmp:
        obj = Path(tmp) / "policy.o"
        subprocess.run([compiler(), "-std=c99", opt, "-c", "-o", str(obj), str(c_path)],
                       check=True, capture_output=True, text=True)  # fmt: skip
        out = subprocess.run(["size", str(obj)], check=True, capture_output=True, text=True).stdout
    text, data, bss = (int(t) for t in out.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss, "flash": text + data, "ram": data + bss}


class CPolicy(Policy):
    """The compiled C policy (a shared library built by :func:`compile_shared`) via ctypes.

    :param integer: the library was exported with the full-integer path.
    """

    def __init__(self, art: Artifact, so_path: str | Path, prefix: str = DEFAULT_PREFIX,
                 integer: bool = False):  # fmt: skip
        self.lib = ctypes.CDLL(str(Path(so_path).resolve()))
        self.integer = integer
        f32p = ctypes.POINTER(ctypes.c_float)
        self._obs_dtype = np.uint8 if (integer and art.image) else np.float32
        in_p = ctypes.POINTER(ctypes.c_uint8 if self._obs_dtype == np.uint8 else ctypes.c_float)
        self._in_p = in_p
        self._forward, self._act = (
            getattr(self.lib, f"{prefix}_forward"),
            getattr(self.lib, f"{prefix}_act"),
        )
        for fn in (self._forward, self._act):
            fn.argtypes, fn.restype = [in_p, f32p], ctypes.c_int
        if integer:
            self._acc = getattr(self.lib, f"{prefix}_accumulators")
            self._acc.argtypes = [in_p, ctypes.POINTER(ctypes.c_int32)]
            self._acc.restype = None
        n_out = art.n_outputs

        def outputs(obs: np.ndarray) -> np.ndarray:
            obs = self._rows(obs)
            out = np.empty((len(obs), n_out), np.float32)
            for i in range(len(obs)):
                self._forward(obs[i].ctypes.data_as(in_p), out[i].ctypes.data_as(f32p))
            return out

        super().__init__(art, outputs)

    def _rows(self, obs: np.ndarray) -> np.ndarray:
        # the env's float64 observations are cast to float32 (the C interface type)
        return np.ascontiguousarray(obs, self._obs_dtype).reshape(len(obs), -1)

    def accumulators(self, obs: np.ndarray) -> np.ndarray:
        """The output layer's int32 accumulators (integer path only)."""
        obs, _ = self._batch(obs)
        obs = self._rows(obs)
        acc = np.empty((len(obs), self.artifact.n_outputs), np.int32)
        i32p = ctypes.POINTER(ctypes.c_int32)
        for i in range(len(obs)):
            self._acc(obs[i].ctypes.data_as(self._in_p), acc[i].ctypes.data_as(i32p))
        return acc

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        """Actions from ``PREFIX_act`` (argmax / rescaling done in C)."""
        obs, single = self._batch(observation)
        obs = self._rows(obs)
        act = np.empty((len(obs), self.artifact.action_size), np.float32)
        f32p = ctypes.POINTER(ctypes.c_float)
        for i in range(len(obs)):
            self._act(obs[i].ctypes.data_as(self._in_p), act[i].ctypes.data_as(f32p))
        actions = act[:, 0].astype(np.int64) if self.artifact.head["kind"] == "argmax" else act
        return (actions[0] if single else actions), None

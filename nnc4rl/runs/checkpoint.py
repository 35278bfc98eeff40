"""Checkpoints that let a killed run continue with exactly the numbers of an uninterrupted one.

A checkpoint is one file (``checkpoint.pkl``, written atomically) holding

* the whole SB3 model object - policy, optimizers, replay buffer, ``num_timesteps``, the last
  observation, exploration rate, its action space's RNG - pickled with its env and logger
  detached (SB3's own ``save`` leaves out the replay buffer and torch RNG, so it cannot resume
  exactly);
* the training envs' state, layer by layer: every VecEnv wrapper and gymnasium wrapper attribute
  (frame stacks, Monitor counters, time limits, life counters, ...) and the simulator itself:
  MuJoCo's full integration state (``mj_getState(..., mjSTATE_INTEGRATION)``: positions,
  velocities, warm start, time, ...) or the Atari emulator with its RNG (``cloneState(
  include_rng=True)``), plus each env's ``np_random``;
* the global RNGs: Python's ``random``, numpy's and torch's;
* whatever the caller adds (the compression callback's masks, the evaluations so far).

The file starts with one text line, ``nnc4rl-checkpoint <version> <signature>``: the keyed hash
of the pickle that follows (:mod:`nnc4rl.core.trust`). Unpickling runs any code a file holds, so
a checkpoint whose signature does not check (not written by this user's nnc4rl: a crafted or
copied file, or one damaged on disk) is refused before it is unpickled.

It is taken between two rollouts (``on_rollout_start``), where SB3's state is consistent: the last
transition is stored and the next step has not been sampled. Evaluation envs are not captured:
every evaluation resets them with fixed seeds.
"""

from __future__ import annotations

import copy
import pickle
import random
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import torch

from nnc4rl.core.atomic import remove_dead_partials, write_atomic
from nnc4rl.core.config import ConfigError
from nnc4rl.core.trust import is_signed, signature

CHECKPOINT_FILE = "checkpoint.pkl"
FORMAT_VERSION = 2  # 2: signed (the header line)
MAGIC = b"nnc4rl-checkpoint"
# SB3 model attributes that are not state: re-attached after loading.
_DETACHED = ("env", "_logger", "_vec_normalize_env")
# Wrapper attributes that are not state (SB3's VecEnvWrapper caches its class's members).
_NOT_STATE = ("class_attributes",)


class CheckpointError(ConfigError, RuntimeError):
    """An env or model whose state cannot be captured exactly, or a checkpoint file that cannot
    be resumed (damaged, or not written by this user's nnc4rl); one line."""


# -- global RNGs ------------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """The state of Python's, numpy's and torch's global RNGs."""
    # SB3 samples replay batches from numpy's legacy global RNG, so that is the state to keep.
    state = {"python": random.getstate(), "numpy": np.random.get_state(),  # noqa: NPY002
             "torch": torch.get_rng_state()}  # fmt: skip
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- envs -------------------------------------------------------------------------------------------
def _attributes(obj: Any, skip: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for name, value in vars(obj).items():
        if name in skip or name in _NOT_STATE:
            continue
        try:
            out[name] = copy.deepcopy(value)
        except Exception as err:  # noqa: BLE001 - name the attribute that blocks a checkpoint
            raise CheckpointError(
                f"cannot checkpoint {type(obj).__name__}.{name} ({type(err).__name__}: {err})"
            ) from None
    return out


def _core_state(env: Any) -> dict[str, Any]:
    """The simulator's own state (see the module docstring)."""
    if hasattr(env, "ale"):  # ale_py AtariEnv
        return {"kind": "ale", "ale": env.ale.cloneState(include_rng=True),
                "np_random": copy.deepcopy(env.np_random)}  # fmt: skip
    if hasattr(env, "data") and hasattr(env, "model") and type(env.data).__name__ == "MjData":
        import mujoco

        kind = mujoco.mjtState.mjSTATE_INTEGRATION
        state = np.empty(mujoco.mj_stateSize(env.model, kind))
        mujoco.mj_getState(env.model, env.data, state, kind)
        return {"kind": "mujoco", "state": state, "np_random": copy.deepcopy(env.np_random)}
    return {"kind": "plain", "attributes": _attributes(env, ())}


def _restore_core(env: Any, state: dict[str, Any]) -> None:
    if state["kind"] == "ale":
        env.ale.restoreState(state["ale"])
        env.np_random = copy.deepcopy(state["np_random"])
    elif state["kind"] == "mujoco":
        import mujoco

        mujoco.mj_setState(env.model, env.data, state["state"], mujoco.mjtState.mjSTATE_INTEGRATION)
        env.np_random = copy.deepcopy(state["np_random"])
    else:
        vars(env).update(copy.deepcopy(state["attributes"]))


def capture_env(venv: Any) -> dict[str, Any]:
    """The state of an SB3 VecEnv (``DummyVecEnv`` under any VecEnv wrappers) of gymnasium envs."""
    from gymnasium import Wrapper

    wrappers, v = [], venv
    while hasattr(v, "venv"):  # VecEnvWrapper, e.g. VecFrameStack
        wrappers.append(_attributes(v, ("venv",)))
        v = v.venv
    if not hasattr(v, "envs"):
        raise CheckpointError(f"{type(v).__name__} is not supported: use a DummyVecEnv")
    envs = []
    for env in v.envs:
        chain, e = [], env
        while isinstance(e, Wrapper):
            chain.append(_attributes(e, ("env",)))
            e = e.env
        envs.append({"wrappers": chain, "core": _core_state(e)})
    return {"vec_wrappers": wrappers, "vec": _attributes(v, ("envs",)), "envs": envs}


def restore_env(venv: Any, state: dict[str, Any]) -> None:
    """Put a freshly built VecEnv of the same spec into the captured ``state``."""
    from gymnasium import Wrapper

    v = venv
    for attrs in state["vec_wrappers"]:
        vars(v).update(copy.deepcopy(attrs))
        v = v.venv
    vars(v).update(copy.deepcopy(state["vec"]))
    for env, env_state in zip(v.envs, state["envs"], strict=True):
        e = env
        for attrs in env_state["wrappers"]:
            if not isinstance(e, Wrapper):
                raise CheckpointError("the env's wrappers differ from the checkpoint's")
            vars(e).update(copy.deepcopy(attrs))
            e = e.env
        _restore_core(e, env_state["core"])


# -- the model and the file -------------------------------------------------------------------------
def _detached(model: Any) -> dict[str, Any]:
    return {k: model.__dict__[k] for k in _DETACHED if k in model.__dict__}


def save_checkpoint(folder: str | Path, model: Any, extra: dict[str, Any]) -> Path:
    """Write the checkpoint of ``model`` (with its training env) and ``extra`` into ``folder``.

    :param extra: picklable caller state (e.g. ``{"key": ..., "compression": ..., "rows": ...}``).
    :returns: the checkpoint file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    env_state = capture_env(model.env)
    saved = _detached(model)
    for k in saved:
        model.__dict__[k] = None
    try:
        payload = {"version": FORMAT_VERSION, "model": model, "env": env_state,
                   "rng": rng_state(), "extra": extra}  # fmt: skip
        blob = cloudpickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        model.__dict__.update(saved)
    path = folder / CHECKPOINT_FILE
    # A run killed while writing left a partial file as large as the replay buffer (GBs on Atari).
    remove_dead_partials(folder, CHECKPOINT_FILE)
    head = b"%s %d %s\n" % (MAGIC, FORMAT_VERSION, signature(blob).encode())
    write_atomic(path, head + blob)
    return path


def _signed_blob(path: Path) -> bytes:
    """The pickle of the checkpoint file ``path`` once its signature checks (never unpickled
    before). :raises CheckpointError: one line saying why it cannot be resumed."""
    fix = "delete it to restart the run"
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"checkpoint {path} is unreadable ({err.strerror}): {fix}") from None
    head, _, blob = raw.partition(b"\n")
    parts = head.split(b" ")
    if len(parts) != 3 or parts[0] != MAGIC:
        raise CheckpointError(f"checkpoint {path} is not an nnc4rl checkpoint of this version "
                              f"(no signed header): {fix}")  # fmt: skip
    if parts[1] != str(FORMAT_VERSION).encode():
        raise CheckpointError(f"checkpoint {path} has format {parts[1].decode(errors='replace')!r}, "
                              f"not {FORMAT_VERSION}: {fix}")  # fmt: skip
    if not is_signed(blob, parts[2].decode(errors="replace")):
        raise CheckpointError(
            f"checkpoint {path} was not written by this user's nnc4rl or is damaged (its "
            f"signature does not check); it is not unpickled: {fix}"
        )
    return blob


def checkpoint_problem(folder: str | Path) -> str:
    """Why the checkpoint in ``folder`` cannot be resumed, in one line (``""``: it can, as far
    as its signature tells; no checkpoint: ``""``). Reads the file, unpickles nothing."""
    if not has_checkpoint(folder):
        return ""
    try:
        _signed_blob(Path(folder) / CHECKPOINT_FILE)
    except CheckpointError as err:
        return str(err)
    return ""


def has_checkpoint(folder: str | Path) -> bool:
    """Whether ``folder`` holds a checkpoint to resume (a killed writer's partial file is none)."""
    return (Path(folder) / CHECKPOINT_FILE).is_file()


def load_checkpoint(folder: str | Path, env: Any) -> tuple[Any, dict[str, Any]] | None:
    """The model (attached to ``env``, which is put into the captured state) and the caller's
    ``extra`` of the checkpoint in ``folder``, with the global RNGs restored; ``None`` if there
    is no checkpoint. Call it last before training continues (it sets the global RNGs)."""
    if not has_checkpoint(folder):
        return None
    path = Path(folder) / CHECKPOINT_FILE
    blob = _signed_blob(path)  # only a file this user's nnc4rl signed is unpickled
    try:
        payload = pickle.loads(blob)
    except Exception as err:  # noqa: BLE001 - a damaged checkpoint is reported, not trusted
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(err).__name__}): delete "
                              "it to restart the run") from None  # fmt: skip
    if not isinstance(payload, dict) or payload.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has an unknown format: delete it to restart "
                              "the run")  # fmt: skip
    model = payload["model"]
    env = model._wrap_env(env, verbose=0)  # as SB3 wraps it (e.g. VecTransposeImage on images)
    restore_env(env, payload["env"])
    model.env = env
    set_rng_state(payload["rng"])
    return model, payload["extra"]

"""Hyperparameters as data: the YAML files in ``nnc4rl/hyperparams`` plus ``--set`` overrides."""

from __future__ import annotations

import argparse
import copy
import inspect
from importlib import resources
from typing import Any

import yaml

SECTIONS = ("sb3", "compression", "evaluation")
# SB3 constructor arguments that a run sets itself and an override must not touch.
RESERVED = {"self", "policy", "env", "seed", "device", "verbose", "tensorboard_log",
            "_init_setup_model", "replay_buffer_class", "replay_buffer_kwargs"}  # fmt: skip
POSITIVE_INT_KEYS = {"n_events", "eval_freq", "eval_episodes", "batch_size", "buffer_size",
                     "target_update_interval", "n_steps"}  # fmt: skip
# SB3 settings SB3 itself does not check (a negative batch_size trains, on garbage).
NON_NEGATIVE_KEYS = {"learning_starts"}
POSITIVE_NUMBER_KEYS = {"learning_rate"}
UNIT_INTERVAL_KEYS = {"gamma", "tau", "exploration_fraction", "exploration_initial_eps",
                      "exploration_final_eps"}  # fmt: skip


class ConfigError(ValueError):
    """Bad input from the user: the message is one line naming the value and what is allowed."""


class Parser(argparse.ArgumentParser):
    """argparse with bad input reported as one line (no usage block) and exit status 2: the
    parser of every command-line entry point."""

    def error(self, message: str):  # noqa: D102
        self.exit(2, f"{self.prog}: error: {message}\n")


# -- the one validator of each compression setting (plan, runner, CLI, profiles, pruning) ---------
def check_sparsity(value: Any, name: str = "sparsity") -> float:
    """``value`` as a float in [0, 1); raises :class:`ConfigError` naming it otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ConfigError(f"{name}={value!r} is invalid: a number in [0, 1) is required")
    return float(value)


def check_bits(value: Any, name: str = "bits") -> int:
    """``value`` as an integer bit width in 2..8; raises :class:`ConfigError` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= 8:
        raise ConfigError(f"{name}={value!r} is invalid: an integer in 2..8 is required")
    return value


def check_int(value: Any, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an integer >= ``minimum`` (and <= ``maximum`` if given); raises
    :class:`ConfigError` otherwise."""
    bad = isinstance(value, bool) or not isinstance(value, int) or value < minimum
    if not bad and maximum is not None and value > maximum:
        bad = True
    if bad:
        allowed = f"in {minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"{name}={value!r} is invalid: an integer {allowed} is required")
    return value


# Upper bounds of settings that size something (threads, processes, RNG seeds).
MAX_SEED = 2**32 - 1  # numpy's and gymnasium's seeds are 32-bit
MAX_THREADS = 1024
MAX_WORKERS = 10_000


def _merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def default_hyperparams(algo: str, arch: str) -> dict[str, dict[str, Any]]:
    """The paper's hyperparameters for ``algo`` (``sac`` / ``dqn``) with ``arch`` overrides.

    :returns: ``{"sb3": {...SB3 constructor kwargs}, "compression": {...}, "evaluation": {...}}``.
    """
    text = resources.files("nnc4rl.hyperparams").joinpath(f"{algo}.yml").read_text()
    raw = yaml.safe_load(text)
    arch_extra = (raw.pop("arch", None) or {}).get(arch) or {}
    return _merge(raw, arch_extra)


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["batch_size=64", "policy_kwargs.net_arch=[64, 64]"]`` -> ``{key: YAML-parsed value}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r} is invalid: use KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: value {value!r} is not valid YAML") from None
    return out


def _type_ok(default: Any, value: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):  # e.g. ent_coef: "auto" or a number
        return isinstance(value, (str, int, float)) and not isinstance(value, bool)
    return isinstance(value, type(default))


def apply_overrides(
    hyper: dict[str, dict[str, Any]], overrides: dict[str, Any], algo_class: type
) -> dict[str, dict[str, Any]]:
    """Apply ``{dotted.key: value}`` overrides, checking keys and value types.

    A key is looked up in ``compression``, then ``evaluation``, then ``sb3``; a key unknown to all
    three is accepted only if it is an argument of ``algo_class`` (e.g. ``SAC``).
    """
    out = copy.deepcopy(hyper)
    sb3_args = set(inspect.signature(algo_class.__init__).parameters) - RESERVED
    for dotted, value in overrides.items():
        head, *rest = dotted.split(".")
        section = next((s for s in ("compression", "evaluation") if head in out[s]), "sb3")
        if section == "sb3" and head not in out["sb3"] and head not in sb3_args:
            allowed = sorted(set(out["compression"]) | set(out["evaluation"]) | sb3_args)
            raise ConfigError(
                f"unknown hyperparameter {dotted!r} for {algo_class.__name__}: "
                f"choose from {', '.join(allowed)}"
            )
        node = out[section]
        for part in [head, *rest][:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"hyperparameter {dotted!r}: {part!r} is not a mapping")
        leaf = [head, *rest][-1]
        if not _type_ok(node.get(leaf), value):
            raise ConfigError(
                f"hyperparameter {dotted}={value!r} has the wrong type: "
                f"expected {type(node[leaf]).__name__} like the default {node[leaf]!r}"
            )
        _check_range(dotted, leaf, value)
        node[leaf] = value
    return out


def _check_range(dotted: str, leaf: str, value: Any) -> None:
    """The range of a setting whose range is known (a number only: a schedule string passes)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if leaf in POSITIVE_INT_KEYS and value < 1:
        raise ConfigError(f"hyperparameter {dotted}={value!r} is invalid: must be >= 1")
    if leaf in NON_NEGATIVE_KEYS and value < 0:
        raise ConfigError(f"hyperparameter {dotted}={value!r} is invalid: must be >= 0")
    if leaf in POSITIVE_NUMBER_KEYS and not value > 0:
        raise ConfigError(f"hyperparameter {dotted}={value!r} is invalid: must be > 0")
    if leaf in UNIT_INTERVAL_KEYS and not 0 <= value <= 1:
        raise ConfigError(f"hyperparameter {dotted}={value!r} is invalid: must be in [0, 1]")

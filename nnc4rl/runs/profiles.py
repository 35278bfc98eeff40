"""Reproduction profiles as data: ``smoke.yml``, ``mini.yml``, ``paper.yml`` in this package.

A profile is a list of *groups*; a group is one figure's grid of runs (algo x envs x archs x
sparsities x seeds at one ``T``). ``machine.yml`` holds the measured speeds used for estimates.
Profiles in the folder named by ``$NNC4RL_PROFILES`` are found too (your own grids, without
editing the package). Every profile is validated completely when loaded: an unknown key, a
value of the wrong type or out of range, or a ``name`` that is not the file's name gives one
:class:`~nnc4rl.core.config.ConfigError` line naming it and what is allowed.

This module imports neither Stable-Baselines3 nor gymnasium: the run store's reader uses it to
tell which stored runs the profile still asks for.
"""

from __future__ import annotations

import copy
import itertools
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from nnc4rl.compress.algos import NAMES
from nnc4rl.core.config import (
    ConfigError,
    check_bits,
    check_int,
    check_sparsity,
    default_hyperparams,
)

# The YAML files live in the data package nnc4rl/profiles/ (beside nnc4rl/hyperparams/).
PROFILES_PACKAGE = "nnc4rl.profiles"
FIGURES = ("fig4", "fig5", "fig6", "ppo", "pilot")
# ppo: PPO on MuJoCo, beyond the paper; pilot: dense runs that choose a study's T
NOT_PROFILES = {"machine"}
# Mirrors nnc4rl.runs.spec / nnc4rl.compress.pruning (which import torch); tests check they agree.
ALGOS = NAMES  # the registry's (nnc4rl.compress.algos imports no torch)
ARCHS = ("mlp", "cnn", "impala", "impala-authors")
DISTRIBUTIONS = ("global", "uniform", "erdos_renyi")
TOP_KEYS = {"name", "description", "memory", "groups"}
REQUIRED_GROUP_KEYS = ("name", "figure", "algo", "envs", "archs", "sparsities", "quantize",
                       "seeds", "T")  # fmt: skip
GROUP_KEYS = set(REQUIRED_GROUP_KEYS) | {"title", "bits", "threads", "keep_policy", "overrides",
                                         "distribution", "label", "checkpoint_every",
                                         "extra_finetune"}  # fmt: skip


@dataclass(frozen=True)
class Group:
    """One figure's grid of runs.

    :param T: the paper's ``T`` in env steps (a quantized run trains ``1.2 T``).
    :param seeds: number of seeds (``0 .. seeds-1``).
    :param keep_policy: store the compressed network as ``policy.npz`` in the run folder.
    :param overrides: hyperparameter overrides (``--set`` keys) applied to every run.
    :param label: what the results are worth, added to every figure caption (e.g. "pipeline
        check"); empty for the paper's protocol.
    :param checkpoint_every: env steps between a run's checkpoints (``None``: the runner's
        default); does not change the result, so not the run id either.
    :param extra_finetune: the equal-length control: fine-tune ``T .. 1.2 T`` without QAT.
    """

    name: str
    figure: str
    title: str
    algo: str
    envs: tuple[str, ...]
    archs: tuple[str, ...]
    sparsities: tuple[float, ...]
    quantize: bool
    bits: int
    seeds: int
    T: int
    threads: int = 1
    keep_policy: bool = False
    distribution: str = "erdos_renyi"
    overrides: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    checkpoint_every: int | None = None
    extra_finetune: bool = False

    def cells(self) -> list[dict[str, Any]]:
        """Every run of the group as ``RunSpec`` keyword arguments (env-major order)."""
        grid = itertools.product(self.envs, self.archs, self.sparsities, range(self.seeds))
        extra = {"extra_finetune": True} if self.extra_finetune else {}
        return [
            dict(
                algo=self.algo,
                env=env,
                arch=arch,
                sparsity=float(s),
                seed=seed,
                distribution=self.distribution,
                quantize=self.quantize,
                bits=self.bits,
                steps=self.T,
                overrides=dict(self.overrides),
                threads=self.threads,
                **extra,
            )  # fmt: skip
            for env, arch, s, seed in grid
        ]

    def hyperparameters(self, arch: str) -> dict[str, dict[str, Any]]:
        """The resolved hyperparameters of this group's runs with ``arch``: the YAML defaults
        with the group's overrides (:func:`expected_hyperparams`)."""
        return expected_hyperparams(self.algo, arch, self.overrides)

    @property
    def n_runs(self) -> int:
        return len(self.envs) * len(self.archs) * len(self.sparsities) * self.seeds

    @property
    def train_steps(self) -> int:
        """Env steps one run trains (``TrainingPlan.total_steps``: 1.2 T with QAT or the
        equal-length control, else T)."""
        from nnc4rl.compress.plan import TrainingPlan

        extra = {"extra_finetune": True} if self.extra_finetune else {}
        return TrainingPlan(self.T, quantize=self.quantize, bits=self.bits, **extra).total_steps


def expected_hyperparams(
    algo: str, arch: str, overrides: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """``default_hyperparams(algo, arch)`` with ``{dotted.key: value}`` overrides, each put in
    the section ``nnc4rl.core.config.apply_overrides`` puts it (``compression``, then ``evaluation``,
    then ``sb3``), without its checks against the SB3 class, so it needs no SB3 import. For
    valid overrides the result equals the hyperparameters ``nnc4rl.runs.spec.resolve`` gives."""
    out = copy.deepcopy(default_hyperparams(algo, arch))
    for dotted, value in overrides.items():
        head, *rest = dotted.split(".")
        section = next((s for s in ("compression", "evaluation") if head in out[s]), "sb3")
        node = out[section]
        for part in [head, *rest][:-1]:
            node = node.setdefault(part, {})
        node[[head, *rest][-1]] = copy.deepcopy(value)
    return out


def _as_envs(envs: Any) -> list[str] | None:
    """``envs`` as a list: ``None`` / empty -> ``None`` (all); one string -> one env."""
    if envs is None or (isinstance(envs, (list, tuple)) and not envs):
        return None
    if isinstance(envs, str):
        return [envs]
    if isinstance(envs, (list, tuple)) and all(isinstance(e, str) and e for e in envs):
        return list(envs)
    raise ConfigError(f"envs={envs!r} is invalid: an env id or a list of env ids is required")


@dataclass(frozen=True)
class Profile:
    """A named set of groups; ``memory`` says what a worker needs."""

    name: str
    description: str
    memory: str
    groups: tuple[Group, ...]

    def select(self, figure: str | None = None, envs: str | list[str] | None = None) -> list[Group]:
        """The groups of ``figure`` (all if ``None``), restricted to ``envs`` when given.

        :param envs: an env id, a list of them, or ``None`` / empty for all.
        :raises ConfigError: for an unknown figure, or an env that none of the selected groups
            has (naming the envs they have).
        """
        if figure is not None and figure not in FIGURES:
            raise ConfigError(f"figure={figure!r} is invalid: choose one of {', '.join(FIGURES)}")
        wanted = _as_envs(envs)
        chosen = [g for g in self.groups if figure is None or g.figure == figure]
        if not chosen:
            have = ", ".join(dict.fromkeys(g.figure for g in self.groups))
            raise ConfigError(f"figure={figure!r} is not in profile {self.name}: it has {have}")
        if wanted:
            have = list(dict.fromkeys(e for g in chosen for e in g.envs))
            unknown = [e for e in wanted if e not in have]
            if unknown:
                scope = f"profile {self.name}" + (f" ({figure})" if figure else "")
                raise ConfigError(
                    f"env={unknown[0]!r} is not in {scope}: choose from {', '.join(have)}"
                )
            chosen = [
                Group(**{**g.__dict__, "envs": tuple(e for e in g.envs if e in wanted)})
                for g in chosen
                if any(e in wanted for e in g.envs)
            ]
        return chosen

    def group(self, name: str) -> Group | None:
        """The group called ``name``, or ``None``."""
        return next((g for g in self.groups if g.name == name), None)

    @property
    def n_runs(self) -> int:
        return sum(g.n_runs for g in self.groups)

    @property
    def train_steps(self) -> int:
        return sum(g.n_runs * g.train_steps for g in self.groups)


def _folders() -> list[Path | Any]:
    """Where profiles are looked up: ``$NNC4RL_PROFILES`` first, then this package."""
    extra = os.environ.get("NNC4RL_PROFILES")
    return ([Path(extra)] if extra else []) + [resources.files(PROFILES_PACKAGE)]


def _files(folder: Path | Any) -> dict[str, Any]:
    try:
        entries = list(folder.iterdir())
    except OSError:
        return {}
    return {p.name[:-4]: p for p in entries if p.name.endswith(".yml")}


def profile_names(folder: str | Path | None = None) -> list[str]:
    """Names of the profiles (those of ``folder`` only, when given)."""
    names: set[str] = set()
    for f in [Path(folder)] if folder is not None else _folders():
        names |= set(_files(f))
    names -= NOT_PROFILES
    return sorted(names, key=lambda n: ({"smoke": 0, "mini": 1, "paper": 2}.get(n, 3), n))


# -- validation: one ConfigError line per problem ------------------------------------------------
def _check_str(value: Any, where: str, empty_ok: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty_ok):
        raise ConfigError(f"{where}={value!r} is invalid: a text is required")
    return value


def _check_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}={value!r} is invalid: true or false is required")
    return value


def _check_one_of(value: Any, where: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"{where}={value!r} is invalid: choose one of {', '.join(allowed)}")
    return value


def _check_list(value: Any, where: str) -> list:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}={value!r} is invalid: a non-empty list is required")
    return value


def _group(profile: str, index: int, raw: Any) -> Group:
    where = f"profile {profile!r}, groups[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}={raw!r} is invalid: a mapping of group keys is required")
    if isinstance(raw.get("name"), str) and raw["name"]:
        where = f"profile {profile!r}, group {raw['name']!r}"
    unknown = sorted(set(map(str, raw)) - GROUP_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}: allowed keys are {', '.join(sorted(GROUP_KEYS))}"
        )
    missing = [k for k in REQUIRED_GROUP_KEYS if k not in raw]
    if missing:
        raise ConfigError(f"{where}: key {missing[0]!r} is missing")
    g = dict(raw)
    _check_str(g["name"], f"{where}: name")
    _check_one_of(g["figure"], f"{where}: figure", FIGURES)
    _check_one_of(g["algo"], f"{where}: algo", ALGOS)
    envs = _check_list(g["envs"], f"{where}: envs")
    for i, env in enumerate(envs):
        _check_str(env, f"{where}: envs[{i}]")
    for i, arch in enumerate(_check_list(g["archs"], f"{where}: archs")):
        _check_one_of(arch, f"{where}: archs[{i}]", ARCHS)
    sparsities = _check_list(g["sparsities"], f"{where}: sparsities")
    g["sparsities"] = tuple(check_sparsity(s, f"{where}: sparsities[{i}]")
                            for i, s in enumerate(sparsities))  # fmt: skip
    _check_bool(g["quantize"], f"{where}: quantize")
    g["bits"] = check_bits(g.get("bits", 8), f"{where}: bits")
    check_int(g["seeds"], f"{where}: seeds")
    check_int(g["T"], f"{where}: T", minimum=5)
    check_int(g.get("threads", 1), f"{where}: threads")
    if g.get("checkpoint_every") is not None:
        check_int(g["checkpoint_every"], f"{where}: checkpoint_every")
    for key in ("keep_policy", "extra_finetune"):
        _check_bool(g.get(key, False), f"{where}: {key}")
    if g["quantize"] and g.get("extra_finetune"):
        raise ConfigError(
            f"{where}: extra_finetune=True is invalid with quantize=True: the equal-length "
            "control trains without QAT"
        )
    _check_one_of(g.get("distribution", "erdos_renyi"), f"{where}: distribution", DISTRIBUTIONS)
    for key in ("title", "label"):
        _check_str(g.get(key, ""), f"{where}: {key}", empty_ok=True)
    overrides = g.get("overrides") or {}
    if not isinstance(overrides, dict) or not all(isinstance(k, str) and k for k in overrides):
        raise ConfigError(
            f"{where}: overrides={overrides!r} is invalid: a mapping of hyperparameter names "
            "to values is required"
        )
    g["overrides"] = dict(overrides)
    g.setdefault("title", g["name"])
    g["envs"], g["archs"] = tuple(envs), tuple(g["archs"])
    return Group(**g)


def parse_profile(raw: Any, name: str) -> Profile:
    """Validate the parsed YAML ``raw`` of the profile file ``name``.yml into a :class:`Profile`.

    :raises ConfigError: one line naming the first bad key or value and what is allowed.
    """
    where = f"profile {name!r}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: the file must be a mapping with keys {', '.join(TOP_KEYS)}")
    unknown = sorted(set(map(str, raw)) - TOP_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}: allowed keys are {', '.join(sorted(TOP_KEYS))}"
        )
    for key in ("name", "groups"):
        if key not in raw:
            raise ConfigError(f"{where}: key {key!r} is missing")
    if raw["name"] != name:
        raise ConfigError(
            f"{where}: name={raw['name']!r} is invalid: it must be the file's name {name!r} "
            "(runs go to data/runs/<name>)"
        )
    for key in ("description", "memory"):
        _check_str(raw.get(key, ""), f"{where}: {key}", empty_ok=True)
    groups = tuple(_group(name, i, g) for i, g in enumerate(_check_list(raw["groups"],
                                                                      f"{where}: groups")))  # fmt: skip
    names = [g.name for g in groups]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise ConfigError(f"{where}: group name {dup!r} is used twice: group names must differ")
    return Profile(name=name, description=raw.get("description", ""),
                   memory=raw.get("memory", ""), groups=groups)  # fmt: skip


def load_profile(name: str | Path, folder: str | Path | None = None) -> Profile:
    """The profile ``name`` (a name, or the path of a ``.yml`` file), validated.

    :param folder: look the name up in this folder only (default: ``$NNC4RL_PROFILES``, then
        the shipped profiles).
    :raises ConfigError: one line, naming the allowed profiles if ``name`` is unknown, or the
        first problem in the file (:func:`parse_profile`).
    """
    path = Path(name) if str(name).endswith((".yml", ".yaml")) else None
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"profile file {str(path)!r} does not exist")
        name, source = path.stem, path
    else:
        name = str(name)
        folders = [Path(folder)] if folder is not None else _folders()
        source = next((_files(f)[name] for f in folders if name in _files(f)), None)
        if source is None or name in NOT_PROFILES:
            names = profile_names(folder)
            raise ConfigError(f"profile={name!r} is unknown: choose one of {', '.join(names)}")
    try:
        raw = yaml.load(source.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506
    except UnicodeDecodeError:
        raise ConfigError(f"profile {name!r}: {str(source)!r} is not UTF-8 text") from None
    except OSError as err:
        raise ConfigError(f"profile {name!r}: {str(source)!r} cannot be read "
                          f"({err.strerror or type(err).__name__})") from None  # fmt: skip
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise ConfigError(f"profile {name!r}: invalid YAML{at} ({problem})") from None
    return parse_profile(raw, name)


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping with a key twice (plain YAML keeps the last,
    so a group pasted twice, or ``T`` set twice, would silently win)."""

    def construct_mapping(self, node, deep=False):  # noqa: D102
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                dup = key in seen
            except TypeError:  # an unhashable key: SafeLoader's own error names it
                break
            if dup:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def machine_speeds() -> dict[str, dict[str, float]]:
    """The reference machine's measured speeds (``machine.yml``)."""
    return yaml.safe_load(resources.files(PROFILES_PACKAGE).joinpath("machine.yml").read_text())

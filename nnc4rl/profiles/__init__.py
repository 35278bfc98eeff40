"""Reproduction profiles as data: ``smoke.yml``, ``mini.yml``, ``paper.yml`` in this package.

A profile is a list of *groups*; a group is one figure's grid of runs (algo x envs x archs x
sparsities x seeds at one ``T``). ``machine.yml`` holds the measured speeds used for estimates.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from nnc4rl.config import ConfigError

FIGURES = ("fig4", "fig5", "fig6")
NOT_PROFILES = {"machine"}
GROUP_KEYS = {"name", "figure", "title", "algo", "envs", "archs", "sparsities", "quantize", "bits",
              "seeds", "T", "threads", "keep_policy", "overrides", "distribution", "label"}  # fmt: skip


@dataclass(frozen=True)
class Group:
    """One figure's grid of runs.

    :param T: the paper's ``T`` in env steps (a quantized run trains ``1.2 T``).
    :param seeds: number of seeds (``0 .. seeds-1``).
    :param keep_policy: store the compressed network as ``policy.npz`` in the run folder.
    :param overrides: hyperparameter overrides (``--set`` keys) applied to every run.
    :param label: what the results are worth, added to every figure caption (e.g. "pipeline
        check"); empty for the paper's protocol.
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

    def cells(self) -> list[dict[str, Any]]:
        """Every run of the group as ``RunSpec`` keyword arguments (env-major order)."""
        grid = itertools.product(self.envs, self.archs, self.sparsities, range(self.seeds))
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
            )  # fmt: skip
            for env, arch, s, seed in grid
        ]

    @property
    def n_runs(self) -> int:
        return len(self.envs) * len(self.archs) * len(self.sparsities) * self.seeds

    @property
    def train_steps(self) -> int:
        """Env steps one run trains: ``1.2 T`` with QAT, else ``T``."""
        return -(-6 * self.T // 5) if self.quantize else self.T


@dataclass(frozen=True)
class Profile:
    """A named set of groups; ``memory`` says what a worker needs."""

    name: str
    description: str
    memory: str
    groups: tuple[Group, ...]

    def select(self, figure: str | None = None, envs: list[str] | None = None) -> list[Group]:
        """The groups of ``figure`` (all if ``None``), restricted to ``envs`` when given."""
        if figure is not None and figure not in FIGURES:
            raise ConfigError(f"figure={figure!r} is invalid: choose one of {', '.join(FIGURES)}")
        out = []
        for g in self.groups:
            if figure is not None and g.figure != figure:
                continue
            if envs:
                kept = tuple(e for e in g.envs if e in envs)
                if not kept:
                    continue
                g = Group(**{**g.__dict__, "envs": kept})
            out.append(g)
        return out

    @property
    def n_runs(self) -> int:
        return sum(g.n_runs for g in self.groups)

    @property
    def train_steps(self) -> int:
        return sum(g.n_runs * g.train_steps for g in self.groups)


def profile_names() -> list[str]:
    """Names of the shipped profiles."""
    files = resources.files(__name__).iterdir()
    names = {p.name[:-4] for p in files if p.name.endswith(".yml")} - NOT_PROFILES
    return sorted(names, key=lambda n: ({"smoke": 0, "mini": 1, "paper": 2}.get(n, 3), n))


def _group(profile: str, raw: dict[str, Any]) -> Group:
    unknown = set(raw) - GROUP_KEYS
    if unknown:
        raise ConfigError(f"profile {profile!r}: unknown group key(s) {sorted(unknown)}")
    raw = dict(raw)
    raw.setdefault("title", raw.get("name", ""))
    for key in ("envs", "archs", "sparsities"):
        raw[key] = tuple(raw[key])
    raw["overrides"] = dict(raw.get("overrides") or {})
    if raw["figure"] not in FIGURES:
        raise ConfigError(f"profile {profile!r}: figure={raw['figure']!r} is not one of {FIGURES}")
    return Group(**raw)


def load_profile(name: str) -> Profile:
    """The profile ``name``; raises ``ConfigError`` naming the allowed ones if unknown."""
    names = profile_names()
    if name not in names:
        raise ConfigError(f"profile={name!r} is unknown: choose one of {', '.join(names)}")
    raw = yaml.safe_load(resources.files(__name__).joinpath(f"{name}.yml").read_text())
    groups = tuple(_group(name, g) for g in raw["groups"])
    return Profile(name=raw["name"], description=raw.get("description", ""),
                   memory=raw.get("memory", ""), groups=groups)  # fmt: skip


def machine_speeds() -> dict[str, dict[str, float]]:
    """The reference machine's measured speeds (``machine.yml``)."""
    return yaml.safe_load(resources.files(__name__).joinpath("machine.yml").read_text())

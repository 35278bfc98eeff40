"""The one registry of supported SB3 algorithms: what is compressed, what mirrors it, what ships.

Every part of nnc4rl that needs to know an algorithm's network (the callback, the measurements
of a saved ``model.zip``, the export, the runner) asks :func:`algo_of` / :func:`algo_by_name`.
Adding an algorithm is one :class:`AlgoInfo` entry in :data:`ALGORITHMS`.

Module paths are relative to ``model.policy``:

* SAC / TQC - the actor (``actor``): the deployed path ``latent_pi`` + ``mu``; ``log_std`` only
  serves exploration, is pruned to ``mu``'s density (outside the sparsity budget, as the authors
  do) and does not ship. The critics stay dense fp32.
* TD3 / DDPG - the deterministic actor ``actor`` (features extractor + ``mu``, which ends in
  ``tanh``); ``actor_target`` carries the same zeros and, during QAT, the same fake quantization.
* DQN - the Q-network ``q_net``; ``q_net_target`` mirrors it.
* PPO / A2C - the action path of the actor-critic policy: ``features_extractor`` +
  ``mlp_extractor.policy_net`` + ``action_net``. The value branch (``mlp_extractor.value_net``,
  ``value_net``) is not deployed and stays dense. With a *shared* features extractor
  (``share_features_extractor=True``, SB3's default; it has weights only in CNN policies) the value
  function reads the pruned (and, during QAT, fake-quantized) features too: its own layers stay
  dense, but its input is the compressed extractor's output. With an MLP policy the extractor is a
  weightless ``Flatten``, so nothing of the value function is pruned.

The algorithm classes are imported on first use; ``sb3_contrib`` (TQC) is optional.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import Literal

from nnc4rl.core.config import ConfigError

Head = Literal["squash", "deterministic", "gaussian"]


@dataclass(frozen=True)
class AlgoInfo:
    """Where one SB3 algorithm keeps the network nnc4rl compresses.

    :param name: nnc4rl's name (``--algo``), lower case.
    :param module: the Python module of the class (``stable_baselines3``, ``sb3_contrib``).
    :param class_name: the SB3 class (``SAC``).
    :param root: path of the compressed network on ``model.policy`` (``""``: the policy itself).
    :param parts: sub-modules of ``root`` whose Linear / Conv2d layers are compressed, in forward
        order; ``()`` means every layer of ``root``.
    :param mirror: path on ``model.policy`` of a copy that carries the same zeros and fake
        quantization (a target network), or ``None``.
    :param tied: ``(layer, anchor)`` names relative to ``root``: ``layer`` is pruned to
        ``anchor``'s density outside the sparsity budget (SAC's ``log_std`` follows ``mu``).
    :param not_deployed: compressed layers (names relative to ``root``) that do not ship.
    :param optimizer: path on ``model.policy`` of the optimizer that updates the network.
    :param head: what the deployed network computes: ``squash`` (SAC / TQC: ``tanh`` of ``mu``,
        rescaled to the action bounds), ``deterministic`` (TD3 / DDPG: ``mu`` ends in ``tanh``,
        rescaled), ``gaussian`` (PPO / A2C: the mean action clipped to the bounds, or the argmax
        of the logits for discrete actions); DQN's argmax is ``None``.
    :param on_policy: rollouts of ``n_steps x n_envs`` (no replay buffer).
    :param action_spaces: the action spaces it accepts (``box``, ``discrete``).
    """

    name: str
    module: str
    class_name: str
    root: str
    parts: tuple[str, ...] = ()
    mirror: str | None = None
    tied: tuple[tuple[str, str], ...] = ()
    not_deployed: tuple[str, ...] = ()
    optimizer: str = "optimizer"
    head: Head | None = None
    on_policy: bool = False
    action_spaces: tuple[str, ...] = ("box",)
    markers: tuple[str, ...] = field(default=(), compare=False)

    @property
    def prefix(self) -> str:
        """Key prefix of ``root`` in ``model.policy.state_dict()`` (``actor.``, or ``""``)."""
        return f"{self.root}." if self.root else ""

    @property
    def part_prefixes(self) -> tuple[str, ...]:
        """State-dict key prefixes of the compressed network's tensors."""
        return tuple(f"{self.prefix}{p}." for p in self.parts) or (self.prefix,)

    def load_class(self) -> type:
        """The SB3 class; raises ``ImportError`` naming the missing package."""
        try:
            return getattr(import_module(self.module), self.class_name)
        except ImportError:
            raise ImportError(
                f"{self.class_name} needs the {self.module.replace('_', '-')} package: "
                "pip install 'nnc4rl[contrib]'"
            ) from None


ALGORITHMS: dict[str, AlgoInfo] = {
    a.name: a
    for a in (
        AlgoInfo("sac", "stable_baselines3", "SAC", "actor", tied=(("log_std", "mu"),),
                 not_deployed=("log_std",), optimizer="actor.optimizer", head="squash",
                 markers=("actor.latent_pi.", "actor.log_std.")),
        AlgoInfo("tqc", "sb3_contrib", "TQC", "actor", tied=(("log_std", "mu"),),
                 not_deployed=("log_std",), optimizer="actor.optimizer", head="squash",
                 markers=("actor.latent_pi.", "actor.log_std.")),
        AlgoInfo("td3", "stable_baselines3", "TD3", "actor", mirror="actor_target",
                 optimizer="actor.optimizer", head="deterministic", markers=("actor_target.",)),
        AlgoInfo("ddpg", "stable_baselines3", "DDPG", "actor", mirror="actor_target",
                 optimizer="actor.optimizer", head="deterministic", markers=("actor_target.",)),
        AlgoInfo("dqn", "stable_baselines3", "DQN", "q_net", mirror="q_net_target",
                 action_spaces=("discrete",), markers=("q_net.",)),
        AlgoInfo("ppo", "stable_baselines3", "PPO", "",
                 parts=("features_extractor", "mlp_extractor.policy_net", "action_net"),
                 head="gaussian", on_policy=True, action_spaces=("box", "discrete"),
                 markers=("mlp_extractor.policy_net.", "action_net.")),
        AlgoInfo("a2c", "stable_baselines3", "A2C", "",
                 parts=("features_extractor", "mlp_extractor.policy_net", "action_net"),
                 head="gaussian", on_policy=True, action_spaces=("box", "discrete"),
                 markers=("mlp_extractor.policy_net.", "action_net.")),
    )
}  # fmt: skip
NAMES: tuple[str, ...] = tuple(ALGORITHMS)


def supported() -> str:
    """The supported classes, for error messages: ``SAC, TQC, TD3, ...``."""
    return ", ".join(a.class_name for a in ALGORITHMS.values())


def algo_by_name(name: str) -> AlgoInfo:
    """The entry of ``--algo name``; raises :class:`ConfigError` naming the allowed ones."""
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ConfigError(f"algo={name!r} is invalid: choose one of {', '.join(NAMES)}") from None


def algo_of(model) -> AlgoInfo:
    """The entry of an SB3 model: its class or the nearest registered base class (a user's
    subclass of ``SAC`` is a SAC). Raises ``TypeError`` in one line naming what is supported."""
    for cls in type(model).__mro__:
        for info in ALGORITHMS.values():
            if cls.__name__ == info.class_name and cls.__module__.split(".")[0] == info.module:
                return info
    raise TypeError(
        f"model of type {type(model).__name__} is not supported: use one of {supported()}"
    )


def algo_of_keys(keys) -> AlgoInfo:
    """An entry whose network layout matches a policy ``state_dict``'s keys (SAC and TQC, TD3 and
    DDPG, PPO and A2C have the same layout, so the first of each pair stands for both)."""
    keys = list(keys)
    for info in ALGORITHMS.values():
        if any(k.startswith(info.markers) for k in keys):
            return info
    raise ValueError(f"the policy holds none of the networks nnc4rl compresses ({supported()})")

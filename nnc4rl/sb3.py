"""Stable-Baselines3 integration: a callback that prunes and quantizes during ``learn``.

Which network is compressed:

* SAC - the actor only (its MLP ``latent_pi``, the ``mu`` and ``log_std`` heads): only the actor
  runs at inference. The critics stay dense fp32.
* DQN - the Q-network (features extractor and head); its target network carries the same zeros
  and, during QAT, the same fake quantization.

Usage on your own agent::

    model = SAC("MlpPolicy", "Hopper-v4")
    plan = TrainingPlan(total_timesteps=100_000, final_sparsity=0.98, quantize=True)
    model.learn(plan.total_steps, callback=CompressionCallback(plan))
    model.save("hopper_98_int8")  # pruned zeros and int8 grid values, loads with SAC.load

Masks are enforced by a post-step hook on the compressed network's optimizer, so no optimizer
step can regrow a pruned weight between pruning events (a mask applied only in ``on_step`` is
undone by the next ``train()``). The clock is ``model.num_timesteps``, so ``n_envs > 1`` works.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from torch import nn

from nnc4rl.plan import TrainingPlan
from nnc4rl.pruning import Distribution, MaskSet, prunable_layers
from nnc4rl.quant import bake_fake_quant, enable_fake_quant


@dataclass
class CompressedNetwork:
    """The part of an SB3 model that is compressed.

    :param prefix: key prefix of its parameters in ``model.policy.state_dict()``.
    :param names: names of its prunable layers relative to the network (``latent_pi.0``, ``mu``).
    :param layers: the Linear / Conv2d layers whose weights are pruned and quantized.
    :param mirrors: aligned layers of a copy that must match (the DQN target network) or ``[]``.
    :param optimizer: the optimizer that updates ``layers``.
    """

    prefix: str
    names: list[str]
    layers: list[nn.Module]
    mirrors: list[nn.Module]
    optimizer: torch.optim.Optimizer

    @property
    def weight_keys(self) -> list[str]:
        """``state_dict`` keys of the pruned weights, e.g. ``actor.mu.weight``."""
        return [f"{self.prefix}{n}.weight" for n in self.names]


def compressed_network(model: BaseAlgorithm) -> CompressedNetwork:
    """Locate the network to compress in an SB3 ``SAC`` or ``DQN`` model."""
    from stable_baselines3 import DQN, SAC

    if isinstance(model, SAC):
        named = prunable_layers(model.actor)
        return CompressedNetwork(
            "actor.", [n for n, _ in named], [m for _, m in named], [], model.actor.optimizer
        )
    if isinstance(model, DQN):
        named = prunable_layers(model.q_net)
        target = dict(prunable_layers(model.q_net_target))
        return CompressedNetwork(
            "q_net.",
            [n for n, _ in named],
            [m for _, m in named],
            [target[n] for n, _ in named],
            model.policy.optimizer,
        )
    raise TypeError(f"model of type {type(model).__name__} is not supported: use SAC or DQN")


class CompressionCallback(BaseCallback):
    """Gradual magnitude pruning and QAT of an SB3 model, following a :class:`TrainingPlan`.

    :param plan: the schedule; train for ``plan.total_steps`` env steps.
    :param distribution: how sparsity is spread across layers: ``global``, ``uniform`` or
        ``erdos_renyi`` (the paper's).
    :param on_finetune_end: called with the model once ``T`` steps are done, before QAT starts
        (e.g. to evaluate the pruned network); only for a quantized plan.
    :param verbose: 1 prints each phase change.

    When ``learn`` ends with ``num_timesteps >= plan.total_steps`` the callback finalizes the
    model (see :meth:`finalize`): the weights then hold the pruned zeros and, for a quantized
    plan, the grid values, so the saved model is exactly the network that is evaluated.
    A model saved mid-run and loaded again resumes with masks read from its zeros.
    """

    def __init__(
        self,
        plan: TrainingPlan,
        distribution: Distribution = "erdos_renyi",
        on_finetune_end: Callable[[BaseAlgorithm], None] | None = None,
        verbose: int = 0,
    ):
        super().__init__(verbose)
        self.plan = plan
        self.distribution = distribution
        self.on_finetune_end = on_finetune_end
        self.network: CompressedNetwork | None = None
        self.masks: MaskSet | None = None
        self.quantizing = False
        self.finalized = False
        self._hook = None

    # -- SB3 callback interface -----------------------------------------------------------------
    def _init_callback(self) -> None:
        if self.network is not None:  # a second learn() call on the same model
            self._attach_hook()
            return
        self.network = compressed_network(self.model)
        layers, mirrors = self.network.layers, self.network.mirrors
        step = self.model.num_timesteps
        if step > 0:  # resuming a saved model: its zeros are the masks
            self.masks = MaskSet.from_zeros(layers, mirrors or None)
            self.masks.sparsity = max(self.masks.sparsity, self.plan.sparsity_at(step))
        else:
            self.masks = MaskSet(layers, mirrors or None)
        self._attach_hook()
        self._prune_if_due(step)
        if self.plan.quantizing_at(step):
            self._start_qat()

    def _on_step(self) -> bool:
        step = self.num_timesteps
        self._prune_if_due(step)
        if self.plan.quantizing_at(step) and not self.quantizing:
            if self.on_finetune_end is not None:
                self.on_finetune_end(self.model)
            self._start_qat()
        return True

    def _on_training_end(self) -> None:
        if self.num_timesteps >= self.plan.total_steps:
            self.finalize()

    # -- the method -------------------------------------------------------------------------------
    def _attach_hook(self) -> None:
        if self._hook is None:
            self._hook = self.network.optimizer.register_step_post_hook(self._after_step)

    def _after_step(self, optimizer, args, kwargs) -> None:
        if self.masks.sparsity > 0:
            self.masks.apply()

    def _prune_if_due(self, step: int) -> None:
        target = self.plan.sparsity_at(step)
        if target > self.masks.sparsity:
            self.masks.prune_to(target, self.distribution)
            if self.verbose and target == self.plan.final_sparsity:
                print(f"step {step}: final sparsity {target:.4f} reached")

    def _start_qat(self) -> None:
        enable_fake_quant(self.network.layers + self.network.mirrors, self.plan.bits)
        self.quantizing = True
        if self.verbose:
            print(f"step {self.num_timesteps}: {self.plan.bits}-bit QAT starts")

    def finalize(self) -> None:
        """Write the final compressed weights into the model and detach from its optimizer.

        Pruned weights are set to exactly zero (in the target network too); with QAT the fp32
        latent weights are replaced by their dequantized grid values and the layers become plain
        ``nn.Linear`` / ``nn.Conv2d`` again, computing exactly what the fake-quant forward did.
        """
        if self.finalized or self.network is None:
            return
        self.masks.apply(include_mirrors=True)
        if self.quantizing:
            bake_fake_quant(self.network.layers + self.network.mirrors)
            self.quantizing = False
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        self.finalized = True

    def measured_sparsity(self) -> float:
        """Fraction of exact zeros over the pruned weights, read from the live tensors."""
        return self.masks.measured_sparsity()

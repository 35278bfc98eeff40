"""Stable-Baselines3 integration: a callback that prunes and quantizes during ``learn``.

Which network is compressed is declared per algorithm in :mod:`nnc4rl.compress.algos` (SAC, TQC,
TD3, DDPG, DQN, PPO, A2C): SAC's and TQC's actor (``log_std`` pruned to ``mu``'s density), the
TD3 / DDPG actor with ``actor_target`` mirrored, DQN's Q-network with its target mirrored, and the
PPO / A2C action path (the value branch stays dense). Any other model is refused in one line.

Usage on your own agent::

    model = SAC("MlpPolicy", "Hopper-v4")
    plan = TrainingPlan(T=100_000, final_sparsity=0.98, quantize=True)
    model.learn(plan.total_steps, callback=CompressionCallback(plan))
    model.save("hopper_98_int8")  # pruned zeros and int8 grid values, loads with SAC.load

Masks are enforced by a post-step hook on the compressed network's optimizer, so no optimizer
step can regrow a pruned weight between pruning events (a mask applied only in ``on_step`` is
undone by the next ``train()``; PPO's many epochs per rollout are each such a step). The clock is
``model.num_timesteps``, so ``n_envs > 1`` works; on-policy algorithms call the callback after
every env step of a rollout, so a pruning event is applied at the step it falls due.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from torch import nn

from nnc4rl.compress.algos import algo_of
from nnc4rl.compress.plan import Phase, TrainingPlan
from nnc4rl.compress.pruning import Distribution, MaskSet, prunable_layers
from nnc4rl.compress.quant import bake_fake_quant, enable_fake_quant


@dataclass
class CompressedNetwork:
    """The part of an SB3 model that is compressed.

    :param prefix: key prefix of its parameters in ``model.policy.state_dict()``.
    :param names: names of its prunable layers relative to the network (``latent_pi.0``, ``mu``).
    :param layers: the Linear / Conv2d layers whose weights are pruned and quantized.
    :param mirrors: aligned layers of a copy that must match (the DQN target network) or ``[]``.
    :param optimizer: the optimizer that updates ``layers``.
    :param tied: ``{layer index: anchor index}`` of layers pruned to their anchor's density
        outside the sparsity budget: SAC's ``log_std`` follows ``mu`` (the authors' way), so the
        deployed path ``latent_pi`` + ``mu`` has exactly the target sparsity.
    """

    prefix: str
    names: list[str]
    layers: list[nn.Module]
    mirrors: list[nn.Module]
    optimizer: torch.optim.Optimizer
    tied: dict[int, int] = field(default_factory=dict)

    @property
    def weight_keys(self) -> list[str]:
        """``state_dict`` keys of the pruned weights, e.g. ``actor.mu.weight``."""
        return [f"{self.prefix}{n}.weight" for n in self.names]


def _network_layers(root: nn.Module, parts: tuple[str, ...]) -> list[tuple[str, nn.Module]]:
    """``(name relative to root, layer)`` of the prunable layers of ``parts`` (all of ``root``
    when ``parts`` is empty), in forward order."""
    if not parts:
        return prunable_layers(root)
    out = []
    for part in parts:
        for name, layer in prunable_layers(root.get_submodule(part)):
            out.append((f"{part}.{name}" if name else part, layer))
    return out


def compressed_network(model: BaseAlgorithm) -> CompressedNetwork:
    """Locate the network to compress in an SB3 model (see :mod:`nnc4rl.compress.algos`).

    :raises TypeError: one line naming the supported algorithms, for any other model.
    """
    info = algo_of(model)
    policy = model.policy
    root = policy.get_submodule(info.root) if info.root else policy
    named = _network_layers(root, info.parts)
    names = [n for n, _ in named]
    mirrors: list[nn.Module] = []
    if info.mirror is not None:
        target = dict(_network_layers(policy.get_submodule(info.mirror), info.parts))
        mirrors = [target[n] for n in names]
    tied = {names.index(a): names.index(b) for a, b in info.tied if a in names and b in names}
    optimizer = policy
    for attr in info.optimizer.split("."):
        optimizer = getattr(optimizer, attr)
    return CompressedNetwork(info.prefix, names, [m for _, m in named], mirrors, optimizer, tied)


class PlanNotFinishedWarning(UserWarning):
    """``learn`` ended before the plan's last step: the model is not the compressed network."""


class CompressionCallback(BaseCallback):
    """Gradual magnitude pruning and QAT of an SB3 model, following a :class:`TrainingPlan`.

    :param plan: the schedule; train for ``plan.total_steps`` env steps (in one ``learn`` call, or
        in several with ``reset_num_timesteps=False``; nnc4rl's runner stops once at ``T`` so that
        what SB3 derives from ``learn``'s total, e.g. DQN's exploration schedule, is measured on
        ``T`` and a quantized run equals the unquantized run up to ``T``).
    :param distribution: how sparsity is spread across layers: ``global``, ``uniform`` or
        ``erdos_renyi`` (the paper's).
    :param on_finetune_end: called with the model once ``T`` steps are done, before QAT starts
        (e.g. to evaluate the pruned network); only for a quantized plan.
    :param verbose: 1 prints each phase change.

    When ``learn`` ends with ``num_timesteps >= plan.total_steps`` the callback finalizes the
    model (see :meth:`finalize`): the weights then hold the pruned zeros and, for a quantized
    plan, the grid values, so the saved model is exactly the network that is evaluated; a later
    ``learn`` with this callback is refused. A model saved mid-run and loaded again resumes with
    masks read from its zeros (``learn(..., reset_num_timesteps=False)``; a reset clock is
    refused, since it would restart the schedule on a pruned network). Sparsity and phase are
    recorded through SB3's logger (``compression/*``), so TensorBoard shows them.
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
        self.last_step = 0
        self._hook = None

    # -- SB3 callback interface -----------------------------------------------------------------
    def _init_callback(self) -> None:
        if self.finalized:
            raise RuntimeError(
                "this CompressionCallback already finalized the model (its plan is complete): "
                "the weights are baked; train further with a new plan and callback"
            )
        step = self.model.num_timesteps
        if self.network is None:
            self.network = compressed_network(self.model)
            net = self.network
            # A loaded model's zeros are its masks; measured zeros win over the plan, so a
            # pruning event that is due is still applied below (never skipped).
            self.masks = MaskSet.from_zeros(net.layers, net.mirrors or None, net.tied)
            if step == 0 and self.masks.sparsity > 0:
                raise RuntimeError(
                    f"the model already holds pruned weights (sparsity "
                    f"{self.masks.sparsity:.4f}) but num_timesteps is 0: continue a run with "
                    "learn(..., reset_num_timesteps=False), or start from a fresh model"
                )
            overdue = sum(e <= step for e in self.plan.event_steps()) if self.plan.prunes else 0
            if self.masks.sparsity == 0 and overdue > 1:  # one due event is a resume; more: a jump
                raise RuntimeError(
                    f"the model's clock (num_timesteps={step:,}) is past {overdue} of the plan's "
                    f"{self.plan.n_events} pruning events: it would prune a dense model to "
                    f"{self.plan.sparsity_at(step):.4f} at once; to compress a trained model, "
                    "start the plan at 0 with learn(..., reset_num_timesteps=True) (as `nnc4rl "
                    "compress` does)"
                )
        elif step < self.last_step:
            raise RuntimeError(
                f"num_timesteps went back from {self.last_step} to {step}: continue a run with "
                "learn(..., reset_num_timesteps=False)"
            )
        self._attach_hook()
        self._follow_plan(step)

    def _on_step(self) -> bool:
        self._follow_plan(self.num_timesteps)
        return True

    def _on_training_end(self) -> None:
        if self.num_timesteps >= self.plan.total_steps:
            self.finalize()
            return
        n, total = self.num_timesteps, self.plan.total_steps
        if self.plan.quantize and not self.quantizing:
            what = f"{self.plan.bits}-bit QAT has not run (the weights are off its grid)"
        elif self.masks.sparsity < self.plan.final_sparsity:
            what = f"pruning is at {self.masks.sparsity:.4f} of {self.plan.final_sparsity:g}"
        else:
            what = "its last phase is unfinished and the weights are not baked"
        warnings.warn(
            f"learn stopped at step {n:,} of the plan's {total:,}: {what}; continue with "
            f"model.learn({total - n}, callback=<this callback>, reset_num_timesteps=False)",
            PlanNotFinishedWarning,
            stacklevel=2,
        )

    # -- the method -------------------------------------------------------------------------------
    def _follow_plan(self, step: int) -> None:
        """Apply what the plan asks at ``step``: a due pruning event, then the start of QAT."""
        self.last_step = step
        target = self.plan.sparsity_at(step)
        if target > self.masks.sparsity:
            self.masks.prune_to(target, self.distribution)
            if self.verbose and target == self.plan.final_sparsity:
                print(f"step {step}: final sparsity {target:.4f} reached")
        # QAT starts in a learn call that goes past T: a call that stops at T (the runner's first
        # stage) may overshoot T by a rollout (DQN's train_freq) but still trains the fp32 net.
        if (
            self.plan.quantizing_at(step)
            and not self.quantizing
            and self.model._total_timesteps > self.plan.T
        ):
            if self.on_finetune_end is not None:
                self.on_finetune_end(self.model)
            self._start_qat()
        self.logger.record("compression/sparsity", self.masks.sparsity)
        phase = self.network_phase()
        self.logger.record("compression/phase", phase.value)
        # the phase as a number too: TensorBoard draws scalars, not strings (0 dense .. 3 QAT)
        self.logger.record("compression/phase_index", list(Phase).index(phase))

    def network_phase(self) -> Phase:
        """The phase that produced the current network: an evaluation's label. At ``T`` it is
        the fp32 network (fine-tuning) until QAT starts, whatever the env count."""
        if self.quantizing or (self.finalized and self.plan.quantize):
            return Phase.QAT
        return self.plan.phase_at(max(0, min(self.last_step, self.plan.T) - 1))

    def _attach_hook(self) -> None:
        if self._hook is None:
            self._hook = self.network.optimizer.register_step_post_hook(self._after_step)

    def _after_step(self, optimizer, args, kwargs) -> None:
        if self.masks.sparsity > 0:
            self.masks.apply()

    def _start_qat(self) -> None:
        enable_fake_quant(self.network.layers + self.network.mirrors, self.plan.bits)
        self.quantizing = True
        if self.verbose:
            print(f"step {self.num_timesteps}: {self.plan.bits}-bit QAT starts")

    # -- checkpoints ------------------------------------------------------------------------------
    def state(self) -> dict:
        """What a checkpoint needs to continue exactly: the masks (not re-derived from zeros, which
        a weight can also reach by chance), the current target sparsity, QAT on/off, the clock."""
        return {
            "masks": [m.clone() for m in self.masks.masks],
            "sparsity": self.masks.sparsity,
            "quantizing": self.quantizing,
            "last_step": self.last_step,
        }

    def restore(self, model: BaseAlgorithm, state: dict) -> None:
        """Bind to a model restored from a checkpoint and take over :meth:`state`'s values."""
        self.network = compressed_network(model)
        net = self.network
        self.masks = MaskSet(net.layers, net.mirrors or None, net.tied)
        self.masks.masks = [m.clone() for m in state["masks"]]
        self.masks.sparsity = state["sparsity"]
        self.quantizing = state["quantizing"]
        self.last_step = state["last_step"]

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
        """Fraction of exact zeros over the budgeted weights, read from the live tensors."""
        return self.masks.measured_sparsity()

"""The training plan: one object that every other part asks "what happens at env step t?".

The paper's scheme (its Fig. 3), as fractions of ``T`` (the one name of the paper's total training
steps everywhere in nnc4rl; a quantized run trains ``total_steps = 1.2 T``):

====================  =================  ==========================================
phase                 env steps          what happens
====================  =================  ==========================================
``dense``             [0, 0.2 T)         ordinary training
``pruning``           [0.2 T, 0.8 T)     ``n_events`` gradual magnitude-pruning events
``finetune``          [0.8 T, T)         training with the masks fixed
``qat``               [T, 1.2 T)         8-bit (``bits``) QAT, only when ``quantize``
``finetune``          [T, 1.2 T)         more fine-tuning instead, with ``extra_finetune``
====================  =================  ==========================================

``extra_finetune`` is the equal-length control the paper lacks: a pruned network trained the same
1.2 T steps as a quantized one, without QAT, so "pruned + quantized vs pruned" can compare
networks trained equally long.

The sparsity follows Zhu & Gupta (2017), the paper's eq. (1)::

    s_k = s_f + (s_i - s_f) * (1 - k / n) ** 3,   k = 0..n,  at step t_0 + k * dt

with ``s_i = 0``, ``t_0 = 0.2 T`` and ``t_0 + n * dt = 0.8 T``, so the final sparsity is reached
exactly at ``0.8 T``. Event ``k`` fires at the first integer step ``t >= t_0 + k * dt``; the index
is computed in integer arithmetic so no floating-point rounding moves an event.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum

from nnc4rl.core.config import ConfigError, check_bits, check_int, check_sparsity


class Phase(str, Enum):  # noqa: UP042 (kept: StrEnum would change str() of a member)
    """A phase of the training scheme."""

    DENSE = "dense"
    PRUNING = "pruning"
    FINETUNE = "finetune"
    QAT = "qat"


@dataclass(frozen=True)
class TrainingPlan:
    """The schedule of one compressed training run.

    :param T: the paper's ``T`` in env steps (SB3's ``num_timesteps``, which counts the steps of
        all parallel envs). A quantized run trains ``total_steps = 1.2 T``.
    :param final_sparsity: target fraction of pruned weights ``s_f`` in [0, 1); 0 means dense.
    :param n_events: number of pruning events ``n`` (the paper: 600 for SAC, 300 for DQN).
    :param quantize: add the QAT phase ``[T, 1.2 T)``.
    :param bits: weight bit width of the QAT phase (2..8).
    :param extra_finetune: without ``quantize``, fine-tune ``[T, 1.2 T)`` too (equal-length control).
    """

    T: int
    final_sparsity: float = 0.0
    n_events: int = 600
    quantize: bool = False
    bits: int = 8
    extra_finetune: bool = False

    def __post_init__(self) -> None:
        check_int(self.T, "T", minimum=5)
        check_sparsity(self.final_sparsity)
        check_int(self.n_events, "n_events")
        check_bits(self.bits)
        if self.quantize and self.extra_finetune:
            raise ConfigError(
                "quantize and extra_finetune are exclusive: [T, 1.2 T) is either QAT or the "
                "equal-length fine-tuning control"
            )

    # -- phase boundaries (env steps) -------------------------------------------------------
    @property
    def pruning_start(self) -> float:
        """``t_0 = 0.2 T`` (may be fractional)."""
        return self.T / 5

    @property
    def pruning_end(self) -> float:
        """``t_0 + n dt = 0.8 T``: the step at which the final sparsity is reached."""
        return 4 * self.T / 5

    @property
    def qat_start(self) -> int:
        """``T``: end of fine-tuning, start of QAT (or of the extra fine-tuning)."""
        return self.T

    @property
    def extends(self) -> bool:
        """Whether the run trains past ``T`` (QAT or the equal-length control)."""
        return self.quantize or self.extra_finetune

    @property
    def total_steps(self) -> int:
        """Env steps to train: ``1.2 T`` (rounded up) with QAT or extra fine-tuning, else ``T``."""
        return steps_to_train(self.T, self.extends)

    def phase_spans(self) -> list[tuple[Phase, float, float]]:
        """``(phase, first step, end step)`` of each phase of this run, in order (for figures)."""
        t = self.T
        if self.prunes:
            spans = [(Phase.DENSE, 0.0, self.pruning_start),
                     (Phase.PRUNING, self.pruning_start, self.pruning_end),
                     (Phase.FINETUNE, self.pruning_end, float(t))]  # fmt: skip
        else:
            spans = [(Phase.DENSE, 0.0, float(t))]
        if self.quantize:
            spans.append((Phase.QAT, float(t), float(self.total_steps)))
        elif self.extra_finetune:
            spans.append((spans[-1][0], float(t), float(self.total_steps)))
        return spans

    @property
    def prunes(self) -> bool:
        return self.final_sparsity > 0.0

    # -- queries ----------------------------------------------------------------------------
    def event_index(self, step: int) -> int:
        """Number of pruning events that have fired once ``step`` env steps are done (0..n)."""
        t = self.T
        # k = floor((step - 0.2 T) / dt) with dt = 0.6 T / n, in exact integer arithmetic.
        if 5 * step < t:
            return 0
        return min(self.n_events, (5 * step - t) * self.n_events // (3 * t))

    def sparsity_of_event(self, k: int) -> float:
        """Target sparsity after event ``k`` (eq. 1 with ``s_i = 0``)."""
        return self.final_sparsity * (1.0 - (1.0 - k / self.n_events) ** 3)

    def sparsity_at(self, step: int) -> float:
        """Target sparsity once ``step`` env steps are done."""
        if not self.prunes:
            return 0.0
        return self.sparsity_of_event(self.event_index(step))

    def event_steps(self) -> list[int]:
        """The integer env step at which each event ``k = 1..n`` fires (0.2 T < step <= 0.8 T)."""
        t, n = self.T, self.n_events
        # smallest integer step with (5 step - T) n >= 3 T k
        return [-(-(3 * t * k + t * n) // (5 * n)) for k in range(1, n + 1)]

    def phase_at(self, step: int) -> Phase:
        """Phase that env step ``step`` (0-based: the ``step+1``-th step) belongs to."""
        if 5 * step < self.T:
            return Phase.DENSE
        if 5 * step < 4 * self.T:
            return Phase.PRUNING if self.prunes else Phase.DENSE
        if step < self.T or not self.quantize:
            return Phase.FINETUNE if self.prunes else Phase.DENSE
        return Phase.QAT

    def quantizing_at(self, step: int) -> bool:
        """Whether fake quantization is on once ``step`` env steps are done."""
        return self.quantize and step >= self.T

    def to_dict(self) -> dict:
        return asdict(self)


def steps_to_train(T: int, extends: bool) -> int:
    """Env steps a run of ``T`` trains: ``ceil(1.2 T)`` when it extends past ``T``, else ``T``."""
    return -(-6 * T // 5) if extends else T

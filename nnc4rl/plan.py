"""The training plan: one object that every other part asks "what happens at env step t?".

The paper's scheme (its Fig. 3), as fractions of ``T`` = ``total_timesteps``:

====================  =================  ==========================================
phase                 env steps          what happens
====================  =================  ==========================================
``dense``             [0, 0.2 T)         ordinary training
``pruning``           [0.2 T, 0.8 T)     ``n_events`` gradual magnitude-pruning events
``finetune``          [0.8 T, T)         training with the masks fixed
``qat``               [T, 1.2 T)         8-bit (``bits``) QAT, only when ``quantize``
====================  =================  ==========================================

The sparsity follows Zhu & Gupta (2017), the paper's eq. (1)::

    s_k = s_f + (s_i - s_f) * (1 - k / n) ** 3,   k = 0..n,  at step t_0 + k * dt

with ``s_i = 0``, ``t_0 = 0.2 T`` and ``t_0 + n * dt = 0.8 T``, so the final sparsity is reached
exactly at ``0.8 T``. Event ``k`` fires at the first integer step ``t >= t_0 + k * dt``; the index
is computed in integer arithmetic so no floating-point rounding moves an event.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum


class Phase(str, Enum):
    """A phase of the training scheme."""

    DENSE = "dense"
    PRUNING = "pruning"
    FINETUNE = "finetune"
    QAT = "qat"


@dataclass(frozen=True)
class TrainingPlan:
    """The schedule of one compressed training run.

    :param total_timesteps: the paper's ``T`` in env steps (SB3's ``num_timesteps``, which counts
        the steps of all parallel envs). A quantized run trains ``1.2 T`` steps.
    :param final_sparsity: target fraction of pruned weights ``s_f`` in [0, 1); 0 means dense.
    :param n_events: number of pruning events ``n`` (the paper: 600 for SAC, 300 for DQN).
    :param quantize: add the QAT phase ``[T, 1.2 T)``.
    :param bits: weight bit width of the QAT phase (2..8).
    """

    total_timesteps: int
    final_sparsity: float = 0.0
    n_events: int = 600
    quantize: bool = False
    bits: int = 8

    def __post_init__(self) -> None:
        if not isinstance(self.total_timesteps, int) or self.total_timesteps < 5:
            raise ValueError(
                f"total_timesteps={self.total_timesteps!r} is invalid: an integer >= 5 is required"
            )
        if not 0.0 <= self.final_sparsity < 1.0:
            raise ValueError(f"sparsity={self.final_sparsity!r} is invalid: it must be in [0, 1)")
        if not isinstance(self.n_events, int) or self.n_events < 1:
            raise ValueError(f"n_events={self.n_events!r} is invalid: an integer >= 1 is required")
        if not isinstance(self.bits, int) or not 2 <= self.bits <= 8:
            raise ValueError(f"bits={self.bits!r} is invalid: an integer in 2..8 is required")

    # -- phase boundaries (env steps) -------------------------------------------------------
    @property
    def pruning_start(self) -> float:
        """``t_0 = 0.2 T`` (may be fractional)."""
        return self.total_timesteps / 5

    @property
    def pruning_end(self) -> float:
        """``t_0 + n dt = 0.8 T``: the step at which the final sparsity is reached."""
        return 4 * self.total_timesteps / 5

    @property
    def qat_start(self) -> int:
        """``T``: end of fine-tuning, start of QAT."""
        return self.total_timesteps

    @property
    def total_steps(self) -> int:
        """Env steps to train: ``1.2 T`` (rounded up) with QAT, else ``T``."""
        if not self.quantize:
            return self.total_timesteps
        return -(-6 * self.total_timesteps // 5)

    @property
    def prunes(self) -> bool:
        return self.final_sparsity > 0.0

    # -- queries ----------------------------------------------------------------------------
    def event_index(self, step: int) -> int:
        """Number of pruning events that have fired once ``step`` env steps are done (0..n)."""
        t = self.total_timesteps
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
        t, n = self.total_timesteps, self.n_events
        # smallest integer step with (5 step - T) n >= 3 T k
        return [-(-(3 * t * k + t * n) // (5 * n)) for k in range(1, n + 1)]

    def phase_at(self, step: int) -> Phase:
        """Phase that env step ``step`` (0-based: the ``step+1``-th step) belongs to."""
        if 5 * step < self.total_timesteps:
            return Phase.DENSE
        if 5 * step < 4 * self.total_timesteps:
            return Phase.PRUNING if self.prunes else Phase.DENSE
        if step < self.total_timesteps:
            return Phase.FINETUNE if self.prunes else Phase.DENSE
        return Phase.QAT

    def quantizing_at(self, step: int) -> bool:
        """Whether fake quantization is on once ``step`` env steps are done."""
        return self.quantize and step >= self.total_timesteps

    def to_dict(self) -> dict:
        return asdict(self)

"""Synthetic ``load_runs`` / ``load_curves`` tables for the analysis tests: known effects, seeds
that share a luck term across settings (so pairing matters), optional controls."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from nnc4rl.runs.schema import point_bits, variant


def _row(base: dict, point: str, bits: int, sparsity: float, value: float) -> dict:
    eval_bits = point_bits(point, bits)
    nominal = (32 / eval_bits) / (1 - sparsity)
    step = base["T"] if point == "finetune_end" or point.startswith("ptq") else 6 * base["T"] // 5
    return dict(
        base,
        point=point,
        variant=variant(sparsity, point, bits),
        eval_bits=eval_bits,
        step=step,
        return_mean=float(value),
        return_std=1.0,
        episodes=5,
        measured_sparsity=sparsity,
        params=1000,
        nnz=round(1000 * (1 - sparsity)),
        fp32_bytes=4400,
        compressed_bytes=round(4400 / (nominal / 3 + 1)),
        nominal_ratio=nominal,
        real_ratio=4400 / round(4400 / (nominal / 3 + 1)),
        wall_time_s=1.0,
        current=True,
        stale_reason="",
    )


def synthetic_runs(
    *,
    env: str = "HalfCheetah-v4",
    figure: str = "fig4",
    group: str = "mujoco",
    algo: str = "sac",
    arch: str = "mlp",
    T: int = 1000,
    sparsities: tuple[float, ...] = (0.0, 0.5, 0.9, 0.98),
    seeds: int = 5,
    dense: float = 1000.0,
    seed_sd: float = 100.0,
    noise: float = 5.0,
    loss: Callable[[float], float] = lambda s: 0.0,
    qat_gain: float = 0.0,
    extra_gain: float = 0.0,
    controls_at: tuple[float, ...] = (),
    int4_at: tuple[float, ...] = (),
    ptq: bool = False,
    dense_long: bool = True,
    rng_seed: int = 0,
) -> pd.DataFrame:
    """Rows like ``nnc4rl.study.results.load_runs``: seed ``k`` returns ``dense + luck_k`` minus
    ``loss(s) * dense`` when pruned to ``s``, plus ``qat_gain * dense`` after QAT and
    ``extra_gain * dense`` after the equal-length fine-tuning; each point adds ``noise``.
    Control runs (``controls_at``: equal length; ``int4_at``: 4-bit QAT) are in groups of their
    own, as in the profiles; ``dense_long`` adds the equal-length control at sparsity 0 (dense
    fp32 trained 1.2 T, the reference of every 1.2 T point)."""
    rng = np.random.default_rng(rng_seed)
    long_rng = np.random.default_rng(
        rng_seed + 1
    )  # the dense 1.2 T arm leaves rng's draws as they were
    luck = rng.normal(0, seed_sd, seeds)
    rows = []
    for s in sparsities:
        for k in range(seeds):
            at_t = dense + luck[k] - loss(s) * dense

            def noisy(v: float) -> float:
                return v + rng.normal(0, noise)

            base = dict(run_id=f"{env}-s{s}-seed{k}", figure=figure, group=group, algo=algo,
                        env=env, arch=arch, seed=k, sparsity=s, quantized=True, bits=8,
                        extra_finetune=False, T=T)  # fmt: skip
            fp32 = noisy(at_t)
            rows.append(_row(base, "finetune_end", 8, s, fp32))
            rows.append(_row(base, "qat_end", 8, s, noisy(at_t + qat_gain * dense)))
            if ptq:
                rows.append(_row(base, "ptq8", 8, s, noisy(at_t)))
                rows.append(_row(base, "ptq4", 8, s, noisy(at_t - 0.2 * dense)))
            if s in controls_at or (s == 0 and dense_long):
                ctl = dict(base, run_id=base["run_id"] + "-ft", quantized=False, bits=32,
                           extra_finetune=True, group=f"{group}-equal-length")  # fmt: skip
                rows.append(_row(ctl, "finetune_end", 32, s, fp32 + 0.5))  # same training to T
                long = at_t + extra_gain * dense
                long += rng.normal(0, noise) if s in controls_at else long_rng.normal(0, noise)
                rows.append(_row(ctl, "extra_finetune_end", 32, s, long))
            if s in int4_at:
                q4 = dict(base, run_id=base["run_id"] + "-q4", bits=4, group=f"{group}-int4")
                rows.append(_row(q4, "finetune_end", 4, s, fp32 - 0.5))
                rows.append(_row(q4, "qat_end", 4, s, noisy(at_t - 0.05 * dense)))
    return pd.DataFrame(rows)


def synthetic_curves(runs: pd.DataFrame, n_points: int = 12) -> pd.DataFrame:
    """Learning curves like ``nnc4rl.study.results.load_curves`` for every run of ``runs``: a ramp
    towards the run's return at ``T``, evaluated every ``1.2 T / n_points`` steps."""
    rows = []
    for rid, g in runs.groupby("run_id", sort=False):
        r = g.iloc[0]
        final = float(g[g["point"] == "finetune_end"]["return_mean"].iloc[0])
        total = 6 * int(r["T"]) // 5 if r["quantized"] or r["extra_finetune"] else int(r["T"])
        for step in np.linspace(0, total, n_points + 1)[1:].astype(int):
            rows.append(dict(run_id=rid, figure=r["figure"], group=r["group"], algo=r["algo"],
                             env=r["env"], arch=r["arch"], seed=r["seed"], sparsity=r["sparsity"],
                             quantized=r["quantized"], bits=r["bits"],
                             extra_finetune=r["extra_finetune"], T=r["T"], step=step,
                             phase="", return_mean=final * min(1.0, step / r["T"]),
                             return_std=1.0, episodes=5))  # fmt: skip
    return pd.DataFrame(rows)

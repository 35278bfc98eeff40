"""The training plan: phases and the Zhu-Gupta schedule against the paper's eq. (1)."""

import pytest

from nnc4rl.compress.plan import Phase, TrainingPlan


def zhu_gupta(k: int, n: int, s_f: float) -> float:
    return s_f + (0.0 - s_f) * (1 - k / n) ** 3


def test_schedule_matches_formula_at_known_steps():
    plan = TrainingPlan(T=1000, final_sparsity=0.9, n_events=10)
    # t_0 = 200, dt = 600 / 10 = 60: event k fires at step 200 + 60 k
    assert plan.event_steps() == [200 + 60 * k for k in range(1, 11)]
    assert plan.sparsity_at(0) == 0.0
    assert plan.sparsity_at(259) == 0.0
    for k in range(1, 11):
        step = 200 + 60 * k
        assert plan.sparsity_at(step) == pytest.approx(zhu_gupta(k, 10, 0.9), abs=1e-12)
        assert plan.sparsity_at(step + 59 if k < 10 else step + 500) == pytest.approx(
            zhu_gupta(k, 10, 0.9), abs=1e-12
        )
    assert plan.sparsity_at(740) == pytest.approx(0.9 * (1 - 0.1**3))


def test_final_sparsity_reached_exactly_at_080_T_not_earlier():
    for total, n in [(1000, 600), (1_000_000, 600), (10_000_000, 300), (1001, 7), (77, 5)]:
        plan = TrainingPlan(T=total, final_sparsity=0.98, n_events=n)
        end = -(-4 * total // 5)  # first integer step >= 0.8 T
        assert plan.event_steps()[-1] == end
        assert plan.sparsity_at(end) == 0.98
        assert plan.sparsity_at(end - 1) < 0.98
        assert plan.event_index(-(-total // 5)) == 0


def test_schedule_is_monotone_and_events_strictly_increase():
    plan = TrainingPlan(T=1_000_000, final_sparsity=0.95, n_events=600)
    steps = plan.event_steps()
    assert len(steps) == 600 and all(a < b for a, b in zip(steps, steps[1:], strict=False))
    values = [plan.sparsity_at(s) for s in range(0, 1_000_001, 997)]
    assert values == sorted(values)


def test_phases_and_total_steps():
    plan = TrainingPlan(T=1000, final_sparsity=0.5, n_events=10, quantize=True)
    assert plan.total_steps == 1200
    assert [plan.phase_at(s) for s in (0, 199, 200, 799, 800, 999, 1000, 1199)] == [
        Phase.DENSE,
        Phase.DENSE,
        Phase.PRUNING,
        Phase.PRUNING,
        Phase.FINETUNE,
        Phase.FINETUNE,
        Phase.QAT,
        Phase.QAT,
    ]
    assert not plan.quantizing_at(999) and plan.quantizing_at(1000)
    dense = TrainingPlan(T=1000)
    assert dense.total_steps == 1000 and dense.sparsity_at(900) == 0.0
    assert dense.phase_at(900) == Phase.DENSE
    assert TrainingPlan(T=1001, quantize=True).total_steps == 1202  # ceil(1.2 T)


@pytest.mark.parametrize(
    "kwargs, bad",
    [
        ({"final_sparsity": 1.0}, "sparsity=1.0"),
        ({"final_sparsity": -0.1}, "sparsity=-0.1"),
        ({"bits": 9}, "bits=9"),
        ({"bits": 1}, "bits=1"),
        ({"n_events": 0}, "n_events=0"),
        ({"T": 2}, "T=2"),
        ({"quantize": True, "extra_finetune": True}, "exclusive"),
    ],
)
def test_bad_plans_are_rejected_with_the_bad_value(kwargs, bad):
    args = {"T": 1000} | kwargs
    with pytest.raises(ValueError, match=bad):
        TrainingPlan(**args)


def test_extra_finetune_is_the_equal_length_control():
    plan = TrainingPlan(T=1000, final_sparsity=0.9, n_events=10, extra_finetune=True)
    quantized = TrainingPlan(T=1000, final_sparsity=0.9, n_events=10, quantize=True)
    assert plan.total_steps == quantized.total_steps == 1200
    assert plan.phase_at(1100) == Phase.FINETUNE and not plan.quantizing_at(1100)
    assert quantized.phase_at(1100) == Phase.QAT and quantized.quantizing_at(1100)
    # the phase spans tile [0, total_steps) with the plan's own boundaries
    spans = quantized.phase_spans()
    assert [p for p, _, _ in spans] == [Phase.DENSE, Phase.PRUNING, Phase.FINETUNE, Phase.QAT]
    assert spans[0][1] == 0 and spans[-1][2] == 1200
    assert all(a[2] == b[1] for a, b in zip(spans, spans[1:], strict=False))
    assert [p for p, _, _ in plan.phase_spans()][-1] == Phase.FINETUNE
    assert TrainingPlan(T=1000).phase_spans() == [(Phase.DENSE, 0.0, 1000.0)]

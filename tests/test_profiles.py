"""The shipped profiles say what the issue asks of them."""

from __future__ import annotations

import pytest

from nnc4rl.config import ConfigError
from nnc4rl.profiles import load_profile, profile_names


def test_names():
    assert profile_names() == ["smoke", "mini", "paper"]
    with pytest.raises(
        ConfigError, match="profile='x' is unknown: choose one of smoke, mini, paper"
    ):
        load_profile("x")


def test_paper_is_the_papers_protocol():
    fig4, fig5, fig6 = load_profile("paper").groups
    assert fig4.envs == ("HalfCheetah-v4", "Hopper-v4", "Walker2d-v4", "Ant-v4", "Humanoid-v4",
                         "Swimmer-v4")  # fmt: skip
    assert fig4.sparsities == (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
    assert (fig4.algo, fig4.T, fig4.seeds, fig4.overrides["n_events"]) == ("sac", 10**6, 10, 600)
    games = ("Pong", "Boxing", "Tutankham", "CrazyClimber")
    for g, arch in ((fig5, "cnn"), (fig6, "impala-authors")):
        assert g.envs == tuple(f"{x}NoFrameskip-v4" for x in games) and g.archs == (arch,)
        assert g.sparsities == (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
        assert (g.algo, g.T, g.seeds, g.overrides["n_events"]) == ("dqn", 10**7, 5, 300)
    assert all(g.quantize and g.bits == 8 and not g.label for g in (fig4, fig5, fig6))
    assert "56 GB" in load_profile("paper").memory


def test_smoke_touches_every_code_path():
    groups = load_profile("smoke").groups
    assert {g.figure for g in groups} == {"fig4", "fig5", "fig6"}
    assert {a for g in groups for a in g.archs} == {"mlp", "cnn", "impala-authors"}
    assert all(g.quantize and len([s for s in g.sparsities if s > 0]) >= 2 for g in groups)
    assert all(g.label for g in groups)


def test_mini_is_the_cpu_study():
    fig4 = load_profile("mini").groups[0]
    assert (fig4.envs, fig4.T, fig4.seeds) == (("HalfCheetah-v4",), 100_000, 3)
    assert fig4.sparsities == (0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99) and fig4.quantize

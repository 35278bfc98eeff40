"""The shipped profiles say what the issue asks of them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnc4rl.core.config import ConfigError
from nnc4rl.runs.profiles import load_profile, profile_names


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
    assert {g.figure for g in groups} == {"fig4", "fig5", "fig6", "ppo", "pilot"}
    assert {a for g in groups for a in g.archs} == {"mlp", "cnn", "impala-authors"}
    assert {g.algo for g in groups} == {"sac", "dqn", "ppo"}
    figures = [g for g in groups if g.figure != "pilot"]
    assert all(g.quantize and len([s for s in g.sparsities if s > 0]) >= 2 for g in figures)
    assert all(g.label for g in groups)
    (pilot,) = load_profile("smoke").select("pilot")  # the pilot notebook's path: dense, 2 seeds
    assert pilot.sparsities == (0.0,) and not pilot.quantize and pilot.seeds == 2


def test_mini_is_the_cpu_study():
    """The issue's study: HalfCheetah, T = 1e5, 5 seeds, dense + the paper's sparsities with
    8-bit QAT, and the controls (equal length, 4-bit QAT) at 0.9 and 0.98 with the same seeds; the
    equal-length control also at sparsity 0 (dense fp32 trained 1.2 T, the reference of every
    1.2 T point). A dense Hopper pilot (2 seeds, 4e5 steps, evaluated every 1e4) chooses the
    Hopper study's T; that study has 10 seeds at 0.98 and 0.99 (the paper's 200x and 400x) and
    its own equal-length reference. PPO (beyond the paper) has a figure of its own."""
    main, equal, qat4, hopper, hopper_long = load_profile("mini").select("fig4")
    assert (main.envs, main.T, main.seeds) == (("HalfCheetah-v4",), 100_000, 5)
    assert main.sparsities == (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
    assert main.quantize and main.bits == 8 and not main.label
    assert equal.extra_finetune and not equal.quantize and qat4.quantize and qat4.bits == 4
    assert set(equal.sparsities) == {0.0, 0.9, 0.98} and set(qat4.sparsities) == {0.9, 0.98}
    for control in (equal, qat4):
        assert (control.envs, control.T, control.seeds) == (main.envs, main.T, main.seeds)
        assert control.overrides == main.overrides  # same evaluation: paired with the main runs
    # Hopper-v4 with 10 seeds: dense, 0.98 and 0.99 with 8-bit QAT, and dense fp32 to 1.2 T
    assert (hopper.envs, hopper.seeds, hopper.sparsities) == (("Hopper-v4",), 10, (0.0, 0.98, 0.99))
    assert hopper.quantize and hopper.bits == 8 and hopper.keep_policy
    assert hopper_long.extra_finetune and hopper_long.sparsities == (0.0,)
    assert not hopper_long.quantize
    assert (hopper_long.envs, hopper_long.T, hopper_long.seeds, hopper_long.overrides) == (
        hopper.envs,
        hopper.T,
        hopper.seeds,
        hopper.overrides,
    )
    (pilot,) = load_profile("mini").select("pilot")
    assert (pilot.envs, pilot.T, pilot.seeds, pilot.sparsities) == (
        ("Hopper-v4",),
        400_000,
        2,
        (0.0,),
    )
    assert (
        not pilot.quantize and not pilot.extra_finetune and pilot.overrides["eval_freq"] == 10_000
    )
    # beyond the paper: PPO, dense / 0.9 / 0.98 with 8-bit QAT and its equal-length reference
    ppo, ppo_long = load_profile("mini").select("ppo")
    assert (ppo.algo, ppo.envs, ppo.T, ppo.seeds) == ("ppo", ("Hopper-v4",), 200_000, 5)
    assert ppo.sparsities == (0.0, 0.9, 0.98) and ppo.quantize and ppo.bits == 8
    assert ppo_long.extra_finetune and ppo_long.sparsities == (0.0,) and not ppo_long.quantize
    assert (ppo_long.T, ppo_long.seeds, ppo_long.overrides) == (ppo.T, ppo.seeds, ppo.overrides)


# -- validation: every typo is one ConfigError line naming the value and what is allowed -------
GOOD = """\
name: {name}
description: a test profile
memory: little
groups:
  - name: mujoco
    figure: fig4
    algo: sac
    envs: [Hopper-v4]
    archs: [mlp]
    sparsities: [0.0, 0.5]
    quantize: true
    bits: 8
    seeds: 2
    T: 300
    checkpoint_every: 100
    overrides: {{learning_starts: 10}}
"""


GROUP = GOOD.split("groups:\n")[1].replace("{{", "{").replace("}}", "}")


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("groups:", "grups:", "unknown key 'grups': allowed keys are description, groups, memory"),
        ("memory:", "memroy:", "unknown key 'memroy'"),
        ("seeds: 2", "seeds: two", "group 'mujoco': seeds='two' is invalid: an integer >= 1"),
        ("name: tiny", "name: other", "name='other' is invalid: it must be the file's name 'tiny'"),
        ("[0.0, 0.5]", "[0.0, 1.5]", "sparsities[1]=1.5 is invalid: a number in [0, 1)"),
        ("bits: 8", "bits: 9", "bits=9 is invalid: an integer in 2..8"),
        ("T: 300", "T: 3", "T=3 is invalid: an integer >= 5"),
        ("[Hopper-v4]", "Hopper-v4", "envs='Hopper-v4' is invalid: a non-empty list"),
        ("figure: fig4", "figure: fig9", "figure='fig9' is invalid: choose one of fig4, fig5"),
        ("archs: [mlp]", "archs: [resnet]", "archs[0]='resnet' is invalid: choose one of mlp"),
        ("checkpoint_every: 100", "checkpoint_every: 0", "checkpoint_every=0 is invalid"),
        ("quantize: true", "quantize: yes please", "quantize='yes please' is invalid: true or"),
        ("quantize: true", "quantize: true\n    extra_finetune: true", "extra_finetune=True is"),
        ("    T: 300", "    T: 300\n    trheads: 1", "group 'mujoco': unknown key 'trheads'"),
        ("groups:\n", "groups:\n" + GROUP, "group name 'mujoco' is used twice"),
        ("groups:", "groups: [", "profile 'tiny': invalid YAML at line"),
    ],
)
def test_bad_profile_is_one_line(tmp_path, old, new, message):
    text = GOOD.format(name="tiny")
    assert old in text
    (tmp_path / "tiny.yml").write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_profile("tiny", folder=tmp_path)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)
    assert str(err.value).startswith("profile 'tiny'")
    # the command line says the same in one line, exit status 2
    done = subprocess.run([sys.executable, "-m", "nnc4rl.profiles", str(tmp_path / "tiny.yml")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [f"nnc4rl profiles: error: {err.value}"]


def test_good_profile_from_a_folder_or_the_environment(tmp_path, monkeypatch):
    (tmp_path / "tiny.yml").write_text(GOOD.format(name="tiny"))
    prof = load_profile(tmp_path / "tiny.yml")
    assert prof == load_profile("tiny", folder=tmp_path)
    (g,) = prof.groups
    assert (g.title, g.checkpoint_every, g.bits, g.sparsities) == ("mujoco", 100, 8, (0.0, 0.5))
    with pytest.raises(ConfigError, match="profile='tiny' is unknown"):
        load_profile("tiny")
    monkeypatch.setenv("NNC4RL_PROFILES", str(tmp_path))
    assert profile_names() == ["smoke", "mini", "paper", "tiny"]
    assert load_profile("tiny") == prof


def test_select_takes_one_env_or_a_list_and_names_unknown_ones():
    smoke = load_profile("smoke")
    assert [g.envs for g in smoke.select("fig4", "Hopper-v4")] == [("Hopper-v4",)]
    assert smoke.select(None, ["PongNoFrameskip-v4"]) == list(smoke.groups[1:3])
    assert smoke.select("fig5", []) == [smoke.groups[1]]
    with pytest.raises(ConfigError, match=r"env='NoSuchEnv-v0' is not in profile smoke \(fig4\): "
                                          r"choose from Hopper-v4$"):  # fmt: skip
        smoke.select("fig4", "NoSuchEnv-v0")
    with pytest.raises(ConfigError, match="envs=5 is invalid: an env id or a list"):
        smoke.select(None, 5)


@pytest.mark.parametrize("name", ["smoke", "mini", "paper"])
def test_train_steps_and_hyperparameters_agree_with_the_runner(name):
    """The reader computes run ids from the YAML alone: its hyperparameters and 1.2 T must be
    the runner's."""
    from nnc4rl.compress.plan import TrainingPlan
    from nnc4rl.runs.spec import RunSpec, resolve

    for g in load_profile(name).groups:
        plan = TrainingPlan(g.T, quantize=g.quantize, extra_finetune=g.extra_finetune)
        assert g.train_steps == plan.total_steps
        for arch in g.archs:
            spec = RunSpec(**(g.cells()[0] | {"arch": arch}))
            assert g.hyperparameters(arch) == resolve(spec)[1]


def test_make_reproduce_checks_the_profile_first(tmp_path):
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(["make", "-s", "reproduce", "PROFILE=nosuch"], cwd=root,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert (
        len(lines) == 1 and "profile=nosuch is unknown: choose one of mini paper smoke" in lines[0]
    )
    assert not (root / "notebooks" / "executed" / "nosuch").exists()


def test_make_lab_allows_root():
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(["make", "-n", "lab"], cwd=root, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    lab = [ln for ln in done.stdout.splitlines() if "jupyter lab" in ln]
    assert len(lab) == 1 and ("--allow-root" in lab[0]) == (os.getuid() == 0)

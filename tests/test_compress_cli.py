"""``nnc4rl compress``: an already trained model.zip pruned and quantized while fine-tuning, its
dense input evaluated on the same paired episodes as the result; and the same in Python."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO, TD3
from stable_baselines3.common.env_util import make_vec_env

from nnc4rl import CompressionCallback, TrainingPlan
from nnc4rl.cli import main
from nnc4rl.compress.measure import load_policy_state, measure_model_zip, network_digest

pytestmark = pytest.mark.xdist_group("compress")

SETTINGS = ["--set", "eval_freq=1000", "--set", "eval_episodes=3", "--set", "n_events=8"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two dense agents trained briefly with plain SB3 and saved: PPO CartPole, TD3 Pendulum."""
    root = tmp_path_factory.mktemp("trained")
    ppo = PPO("MlpPolicy", "CartPole-v1", n_steps=128, batch_size=64, n_epochs=2, seed=0)
    ppo.learn(512)
    ppo.save(root / "ppo.zip")
    td3 = TD3("MlpPolicy", "Pendulum-v1", learning_starts=50, batch_size=32, seed=0,
              policy_kwargs={"net_arch": [64, 64]})  # fmt: skip
    td3.learn(200)
    td3.save(root / "td3.zip")
    return root


@pytest.fixture(scope="module")
def compressed(trained):
    out = trained / "ppo-compressed"
    rc = main(["compress", str(trained / "ppo.zip"), "--algo", "ppo", "--env", "CartPole-v1",
               "--sparsity", "0.9", "--quantize", "--steps", "640", "--set", "n_steps=64",
               *SETTINGS, "--out", str(out), "--no-progress"])  # fmt: skip
    assert rc == 0
    return out, json.loads((out / "summary.json").read_text())


def test_the_input_model_is_evaluated_on_the_result_s_paired_episodes(trained, compressed):
    out, s = compressed
    entry, final = s["eval"]["input"], s["eval"]["qat_end"]
    assert entry["step"] == 0 and entry["phase"] == "dense"
    assert len(entry["returns"]) == len(final["returns"]) == 3
    # the point 'input' is exactly the trained model.zip's network, dense
    assert entry["network_sha256"] == network_digest(load_policy_state(trained / "ppo.zip"))
    assert entry["measured_sparsity"] < 0.01
    assert s["input_model"]["file"] == "ppo.zip" and s["input_model"]["trained_steps"] == 512
    assert "value branch is not compressed" in s["value_function"]


def test_the_compressed_model_is_plain_sb3_at_the_target(compressed):
    out, s = compressed
    assert s["algo"] == "ppo" and s["total_steps"] == 768 and s["plan"]["T"] == 640
    loaded = PPO.load(out / "model.zip", device="cpu")
    assert network_digest(loaded.policy.state_dict()) == s["network_sha256"]
    measured = measure_model_zip(out / "model.zip", bits=8, algo="ppo")
    assert measured["measured_sparsity"] == s["measured_sparsity"] >= 0.9 - 1e-3
    assert measured["quantization"]["max_offgrid"] < 1e-3


def test_an_off_policy_agent_without_its_buffer_fine_tunes_from_an_empty_one(trained, capsys):
    out = trained / "td3-compressed"
    rc = main(["compress", str(trained / "td3.zip"), "--env", "Pendulum-v1", "--sparsity", "0.8",
               "--steps", "200", "--set", "learning_starts=20", *SETTINGS, "--out", str(out),
               "--no-progress"])  # fmt: skip
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["algo"] == "td3" and s["input_model"]["trained_steps"] == 200
    assert s["hyperparameters"]["sb3"] == {"learning_starts": 20}  # the rest: as saved
    loaded = TD3.load(out / "model.zip", device="cpu")
    assert loaded.learning_starts == 20
    assert "compression cost: finetune_end - input" in capsys.readouterr().out


BAD = [
    (["{root}/nosuch.zip", "--env", "CartPole-v1"], "does not exist"),
    (["{root}/ppo.zip", "--algo", "a2c", "--env", "CartPole-v1"], "saved by ppo, not a2c"),
    (["{root}/ppo.zip", "--env", "CartPole-v1", "--set", "policy_kwargs.net_arch=[8]"],
     "cannot change for a trained model"),
    (["{root}/ppo.zip", "--env", "Pendulum-v1"], "does not load on Pendulum-v1"),
]  # fmt: skip


@pytest.mark.parametrize("argv, named", BAD, ids=[b[1] for b in BAD])
def test_bad_input_is_one_line_exit_2_and_no_folder(trained, tmp_path, capsys, argv, named):
    out = tmp_path / "run"
    argv = [a.replace("{root}", str(trained)) for a in argv]
    rc = main(["compress", *argv, "--steps", "100", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and named in err, err
    assert list(tmp_path.iterdir()) == []


def test_the_python_route_a_loaded_model_and_a_plan(trained):
    """README's recipe: load, then learn with a plan from a reset clock (step 0)."""
    model = PPO.load(trained / "ppo.zip", env=make_vec_env("CartPole-v1", seed=0), device="cpu")
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    plan = TrainingPlan(T=384, final_sparsity=0.8, n_events=6, quantize=True)
    compression = CompressionCallback(plan)
    model.learn(plan.total_steps, callback=compression, reset_num_timesteps=True)
    assert compression.finalized and model.num_timesteps >= plan.total_steps
    assert compression.measured_sparsity() >= 0.8 - 1e-3
    value = model.policy.mlp_extractor.value_net[0].weight
    assert (value != 0).float().mean() > 0.99  # the value branch stays dense
    assert not torch.equal(value, before["mlp_extractor.value_net.0.weight"])  # but trained
    obs = np.zeros((1, 4), np.float32)
    assert model.predict(obs, deterministic=True)[0].shape == (1,)

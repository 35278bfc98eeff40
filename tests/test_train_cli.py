"""End to end: `nnc4rl train` on real MuJoCo and ALE envs, and what its run folder holds."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from nnc4rl.cli import main
from nnc4rl.runs.runner import train
from nnc4rl.runs.spec import RunSpec

# Load a model.zip with plain SB3, with nnc4rl made unimportable, and report its tensors.
LOAD_PLAIN = r"""
import json, sys
sys.modules["nnc4rl"] = None
import torch
from stable_baselines3 import DQN, SAC
path, algo, bits = sys.argv[1], sys.argv[2], int(sys.argv[3])
model = (SAC if algo == "sac" else DQN).load(path, device="cpu")
sd = model.policy.state_dict()
prefix = "actor." if algo == "sac" else "q_net."
out = {"zeros": 0, "numel": 0, "max_levels": 0, "max_code": 0, "max_offgrid": 0.0, "target_zeros": 0}
for k, w in sd.items():  # the deployed network: SAC's log_std head only serves exploration
    if not (k.startswith(prefix) and k.endswith(".weight") and w.dim() in (2, 4)):
        continue
    if k.startswith("actor.log_std."):
        continue
    out["zeros"] += int((w == 0).sum()); out["numel"] += w.numel()
    if algo == "dqn":
        out["target_zeros"] += int((sd["q_net_target." + k[len(prefix):]] == 0).sum())
    rows = w.double().flatten(1) if w.dim() == 4 else w.double().reshape(1, -1)
    for r in rows:
        scale = r.abs().max() / (2 ** (bits - 1) - 1)
        codes = r / scale
        out["max_levels"] = max(out["max_levels"], torch.unique(torch.round(codes)).numel())
        out["max_code"] = max(out["max_code"], int(torch.round(codes).abs().max()))
        out["max_offgrid"] = max(out["max_offgrid"], float((codes - torch.round(codes)).abs().max()))
print(json.dumps(out))
"""

CASES = {
    "sac": ["--algo", "sac", "--env", "Hopper-v4", "--steps", "500",
            "--set", "learning_starts=100", "--set", "eval_freq=200", "--set", "eval_episodes=2"],
    "dqn-cnn": ["--algo", "dqn", "--env", "PongNoFrameskip-v4", "--arch", "cnn", "--steps", "250",
                "--threads", "2", "--set", "learning_starts=50", "--set", "eval_episodes=1",
                "--set", "target_update_interval=60", "--set", "eval_freq=100"],
    "dqn-resnet": ["--algo", "dqn", "--env", "PongNoFrameskip-v4", "--arch", "impala-authors",
                   "--steps", "150", "--threads", "2", "--set", "learning_starts=40",
                   "--set", "eval_episodes=1", "--set", "target_update_interval=50"],
}  # fmt: skip
SPARSITY = 0.9


@pytest.fixture(scope="module", params=list(CASES))
def run(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "run"
    cmd = ["nnc4rl", "train", *CASES[request.param], "--sparsity", str(SPARSITY), "--quantize",
           "--seed", "3", "--out", str(out), "--no-progress"]  # fmt: skip
    bin_dir = Path(sys.executable).parent
    proc = subprocess.run([str(bin_dir / cmd[0]), *cmd[1:]], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return request.param, out, proc.stdout


@pytest.mark.xdist_group("e2e")
def test_run_folder_contents(run):
    name, out, stdout = run
    assert sorted(p.name for p in out.iterdir()) == ["evaluations.csv", "model.zip",
                                                     "model.zip.sig", "summary.json"]  # fmt: skip
    from nnc4rl.core.trust import file_is_signed

    assert file_is_signed(out / "model.zip")  # signed by this user's nnc4rl: export loads it
    s = json.loads((out / "summary.json").read_text())
    steps = s["T"]
    assert s["algo"] == name.split("-")[0] and s["seed"] == 3 and s["quantized"] and s["bits"] == 8
    assert s["target_sparsity"] == SPARSITY and s["distribution"] == "erdos_renyi"
    assert s["total_steps"] == -(-6 * steps // 5)
    assert steps <= s["eval"]["finetune_end"]["step"] < steps + 4  # DQN's train_freq overshoots
    assert s["eval"]["qat_end"]["step"] == s["total_steps"]
    for e in s["eval"].values():
        assert e["episodes"] >= 1 and isinstance(e["mean"], float)
    # at T the evaluated network holds exactly the masks: the target within a weight per layer
    at_t = s["eval"]["finetune_end"]
    n_layers = len(s["layer_sparsity"])
    assert abs(at_t["measured_sparsity"] - SPARSITY) * at_t["params"] <= n_layers
    assert at_t["size"]["nominal_ratio"] == pytest.approx(1 / (1 - at_t["measured_sparsity"]))
    # the saved model is the network evaluated last, read back from model.zip
    from nnc4rl.compress.measure import load_policy_state, network_digest

    saved = network_digest(load_policy_state(out / "model.zip"))
    assert s["eval"]["qat_end"]["network_sha256"] == s["network_sha256"] == saved
    assert s["eval"]["finetune_end"]["network_sha256"] != saved  # QAT changed the weights
    # the sizes describe exactly what `nnc4rl export` writes: the artifact's own bytes
    from nnc4rl.export import artifact_from_path
    from nnc4rl.export.codec import encode

    art = artifact_from_path(out)
    assert len(art.layers) == len(s["layer_sparsity"])  # SAC: latent_pi + mu, no log_std
    assert len(encode(art)[1]) == s["size"]["compressed_bytes"]
    assert s["wall_time_s"] > 0
    # the run records the floating-point fingerprint of the machine it ran on
    from nnc4rl.runs.numerics import platform_record

    assert s["platform"]["fingerprint"] == platform_record(s["env"])["fingerprint"]
    # quantization can only add zeros (weights below half a step round to 0)
    assert s["measured_sparsity"] >= SPARSITY - 1e-4
    assert set(s["layer_sparsity"]) == {x["name"] + ".weight" for x in s["size_layers"]}
    size = s["size"]
    assert size["compressed_bytes"] < size["fp32_bytes"]
    assert size["nominal_ratio"] == pytest.approx(4 / (1 - s["measured_sparsity"]))
    assert 1 < size["real_ratio"] < size["nominal_ratio"]
    rows = list(csv.DictReader((out / "evaluations.csv").open()))
    assert rows and rows[-1]["phase"] == "qat" and int(rows[-1]["step"]) == s["total_steps"]
    at_t = [r for r in rows if int(r["step"]) == s["eval"]["finetune_end"]["step"]]
    assert [r["phase"] for r in at_t] == ["finetune"]  # the fp32 network, whatever the env count
    assert [int(r["step"]) for r in rows] == sorted({int(r["step"]) for r in rows})
    assert "measured" in stdout


@pytest.mark.xdist_group("e2e")
def test_saved_model_loads_with_plain_sb3_and_is_compressed(run):
    name, out, _ = run
    s = json.loads((out / "summary.json").read_text())
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_PLAIN, str(out / "model.zip"), s["algo"], "8"],
        capture_output=True, text=True, cwd=out,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["zeros"] / got["numel"] == pytest.approx(s["measured_sparsity"], abs=1e-12)
    assert got["max_levels"] <= 255 and got["max_code"] == 127
    assert got["max_offgrid"] < 1e-3  # every weight is an integer multiple of its scale
    if s["algo"] == "dqn":  # the target network carries the pruning masks too
        assert got["target_zeros"] / got["numel"] >= SPARSITY - 1e-4


@pytest.mark.xdist_group("e2e")
def test_same_seed_gives_identical_numbers(tmp_path):
    spec = RunSpec(
        algo="sac", env="Hopper-v4", steps=300, seed=7, sparsity=0.8, quantize=True,
        overrides={"learning_starts": 60, "eval_freq": 100, "eval_episodes": 2},
    )  # fmt: skip
    a = train(spec, tmp_path / "a", progress=False)
    b = train(spec, tmp_path / "b", progress=False)
    assert a["eval"] == b["eval"]
    assert a["layer_sparsity"] == b["layer_sparsity"]
    assert (tmp_path / "a" / "evaluations.csv").read_text() == (
        tmp_path / "b" / "evaluations.csv"
    ).read_text()
    c = train(RunSpec(**{**spec.__dict__, "seed": 8}), tmp_path / "c", progress=False)
    assert c["eval"] != a["eval"]


BASE = {"--algo": "sac", "--env": "Hopper-v4", "--steps": "100"}
BAD = [
    ({"--algo": "recurrentppo"}, "recurrentppo"),
    ({"--algo": "dqn", "--env": "Pendulum-v1"}, "continuous actions"),
    ({"--algo": "td3", "--env": "CartPole-v1"}, "td3 needs a Box action space"),
    ({"--env": "Hopper-v99"}, "Hopper-v99"),
    ({"--sparsity": "1.0"}, "'1.0'"),
    ({"--sparsity": "-0.5"}, "-0.5"),
    ({"--sparsity": "abc"}, "abc"),
    ({"--bits": "9", "--quantize": None}, "'9'"),
    ({"--bits": "1"}, "'1'"),
    ({"--arch": "resnet50"}, "resnet50"),
    ({"--arch": "cnn"}, "arch='cnn'"),
    ({"--distribution": "random"}, "random"),
    ({"--algo": "dqn"}, "continuous actions"),
    ({"--algo": "sac", "--env": "PongNoFrameskip-v4"}, "PongNoFrameskip-v4"),
    ({"--set": "no_such_key=1"}, "no_such_key"),
    ({"--set": "batch_size=big"}, "batch_size='big'"),
    ({"--set": "eval_episodes=0"}, "eval_episodes=0"),
    ({"--set": "nonsense"}, "nonsense"),
    ({"--steps": "0"}, "'0'"),
]


@pytest.mark.parametrize("change, named", BAD, ids=[b[1] for b in BAD])
def test_bad_input_one_line_exit_2_no_folder(change, named, tmp_path, capsys):
    args = ["train"]
    for flag, value in (BASE | change).items():
        args += [flag] if value is None else [flag, value]
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main([*args, "--out", str(out)]))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert named in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_existing_out_folder_is_refused(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("x")
    code = main(["train", "--algo", "sac", "--env", "Hopper-v4", "--steps", "100", "--set",
                 "learning_starts=10",
                 "--out", str(tmp_path / "run")])  # fmt: skip
    assert code == 2 and "already exists" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["keep.txt"]


def test_a_run_without_a_gradient_step_is_refused(tmp_path, capsys):
    """The measured silent no-op: learning_starts (10 000) > the run's steps finished in 3 s."""
    from nnc4rl.cli import main

    out = tmp_path / "run"
    code = main(["train", "--algo", "sac", "--env", "Pendulum-v1", "--steps", "1000",
                 "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == (
        "nnc4rl train: error: learning_starts=10000 is not below the run's 1,000 env steps: no "
        "gradient step would run; lower it (--set learning_starts=N) or train longer (--steps)"
    )
    assert not out.exists()

"""Deployment export of a SAC actor (npz / ONNX / C) and the export's error handling."""

from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest
import torch

from nnc4rl.cli import main
from nnc4rl.core.envs import make_envs
from nnc4rl.export import (
    Artifact,
    ArtifactError,
    Layer,
    artifact_from_path,
    load_artifact,
    load_policy,
    load_sb3_model,
    save_artifact,
    weights_into_sb3,
)
from nnc4rl.export.c_build import CPolicy, compile_shared, footprint
from nnc4rl.export.c_export import save_c
from nnc4rl.export.closed_loop import play
from nnc4rl.export.onnx_export import OnnxPolicy, save_onnx
from nnc4rl.export.verify import compare, record_observations
from nnc4rl.runs.runner import train
from nnc4rl.runs.spec import RunSpec

pytestmark = pytest.mark.xdist_group("export-sac")

SAC_SPEC = RunSpec(
    algo="sac",
    env="Hopper-v4",
    steps=300,
    sparsity=0.9,
    quantize=True,
    overrides={"learning_starts": 100, "eval_freq": 100_000, "eval_episodes": 2, "n_events": 10},
)


@pytest.fixture(scope="module")
def sac_run(tmp_path_factory):
    """A tiny 90 %-sparse int8 SAC Hopper run and its exports in all three formats."""
    root = tmp_path_factory.mktemp("sac")
    train(SAC_SPEC, root / "run")
    model = load_sb3_model(root / "run" / "model.zip")
    art = artifact_from_path(root / "run")
    save_artifact(art, root / "policy.npz")
    save_onnx(art, root / "policy.onnx")
    c_path, _ = save_c(art, root / "c" / "policy.c")
    so = compile_shared(c_path, root / "c" / "policy.so")
    policies = {
        "npz": load_policy(root / "policy.npz"),
        "onnx": OnnxPolicy(art, root / "policy.onnx"),
        "c": CPolicy(art, so),
    }
    return {"root": root, "model": model, "art": art, "policies": policies, "c_path": c_path}


def test_sac_artifact_holds_the_trained_codes(sac_run):
    model, art = sac_run["model"], load_artifact(sac_run["root"] / "policy.npz")
    assert [la.name for la in art.layers] == ["latent_pi.0", "latent_pi.2", "mu"]
    assert [op["op"] for op in art.ops][-1] == "tanh" and art.head["kind"] == "box"
    for layer in art.layers:
        w = model.actor.state_dict()[f"{layer.name}.weight"].numpy()
        assert np.abs(layer.codes).max() <= 127 and layer.scale.shape == (1,)
        np.testing.assert_array_equal(layer.weight(), w)  # codes * scale is the weight, exactly


def test_artifact_weights_go_back_into_a_fresh_sb3_model(sac_run):
    """``weights_into_sb3`` inverts ``artifact_from_sb3``: the deployed path, bit for bit."""
    from stable_baselines3 import DQN, SAC

    model, art = sac_run["model"], sac_run["art"]
    fresh = SAC("MlpPolicy", "Hopper-v4", device="cpu", buffer_size=1)
    assert weights_into_sb3(art, fresh) is fresh
    trained, loaded = model.actor.state_dict(), fresh.actor.state_dict()
    deployed = [k for k in trained if not k.startswith("log_std")]
    assert deployed and all(torch.equal(trained[k], loaded[k]) for k in deployed)
    with pytest.raises(ArtifactError, match="holds a sac policy, the model is dqn"):
        weights_into_sb3(art, DQN("MlpPolicy", "CartPole-v1", device="cpu", buffer_size=1))
    narrow = SAC("MlpPolicy", "Hopper-v4", device="cpu", buffer_size=1,
                 policy_kwargs={"net_arch": [64, 64]})  # fmt: skip
    with pytest.raises(ArtifactError, match=r"layer 'latent_pi.0': the model has shape \(64, 11\)"):
        weights_into_sb3(art, narrow)


@pytest.mark.parametrize("fmt", ["npz", "onnx", "c"])
def test_sac_actions_match_on_recorded_observations(sac_run, fmt):
    model = sac_run["model"]
    _, env = make_envs(SAC_SPEC.env, SAC_SPEC.seed)
    obs = record_observations(model, env, n=200, seed=1)
    env.close()
    result = compare(model, sac_run["policies"][fmt], obs)
    assert result["max_abs_action_diff"] <= 1e-5, result


def test_sac_evaluation_returns_are_equal(sac_run):
    """Re-running the evaluation episodes with each export gives SB3's returns.

    Actions differ from torch's by float rounding (~1e-7), which MuJoCo carries into the
    returns at the ~1e-6 relative level: equal episode lengths, returns equal to 1e-4 relative.
    """
    from stable_baselines3.common.evaluation import evaluate_policy

    model = sac_run["model"]

    def make_env():
        return make_envs(SAC_SPEC.env, SAC_SPEC.seed)[1]

    env = make_env()
    reference, lengths = evaluate_policy(model, env, 2, return_episode_rewards=True)
    env.close()
    for fmt, policy in sac_run["policies"].items():
        env = make_env()
        returns, lens = evaluate_policy(policy, env, 2, return_episode_rewards=True, warn=False)
        env.close()
        assert lens == lengths, fmt
        np.testing.assert_allclose(returns, reference, rtol=1e-4, err_msg=fmt)
    # the training evaluation (qat_end) played the run's paired evaluation episodes
    summary = json.loads((sac_run["root"] / "run" / "summary.json").read_text())
    episodes = summary["eval"]["qat_end"]["episodes"]
    run = play(sac_run["policies"]["c"], sac_run["art"], episodes)
    assert run["seeds"] == [SAC_SPEC.seed + 10_000 + i for i in range(episodes)]
    assert np.mean(run["returns"]) == pytest.approx(summary["eval"]["qat_end"]["mean"], rel=1e-4)


def test_c_footprint_and_standalone_compile(sac_run, tmp_path):
    sizes = footprint(sac_run["c_path"])
    assert sizes["bss"] == 2 * 256 * 4  # two fp32 activation buffers of the widest layer
    assert 0 < sizes["flash"] < 64 * 1024
    source = sac_run["c_path"].read_text()
    assert "#include <stdlib.h>" not in source and "malloc" not in source


def test_cli_export_all_formats(sac_run, tmp_path, capsys):
    run = str(sac_run["root"] / "run")
    assert main(["export", run, "--format", "npz", "--out", str(tmp_path / "p.npz")]) == 0
    assert main(["export", run, "--format", "onnx", "--out", str(tmp_path / "p.onnx")]) == 0
    npz = str(tmp_path / "p.npz")
    assert main(["export", npz, "--format", "c", "--out", str(tmp_path / "p.c")]) == 0
    assert (tmp_path / "p.h").exists() and "wrote" in capsys.readouterr().out


def _one_line_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exc:  # argparse errors exit directly
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    return err


def _cli_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nnc4rl export: error:") and "\n" not in err
    return err


def test_bad_input_gets_one_line_errors(sac_run, tmp_path, capsys):
    run, out = sac_run["root"] / "run", str(tmp_path / "x.c")
    err = _one_line_error(capsys, ["export", str(run), "--format", "tflite", "--out", out])
    assert "invalid choice: 'tflite'" in err
    assert "ending in .c" in _cli_error(capsys, ["export", str(run), "--format", "c", "--out", "x"])
    assert "does not exist" in _cli_error(capsys, ["export", str(tmp_path / "no"), "--format",
                                                   "npz", "--out", out])  # fmt: skip
    # a model whose weights are off the grid (not quantized)
    model = load_sb3_model(run / "model.zip")
    with torch.no_grad():
        model.actor.latent_pi[0].weight.mul_(
            1.0 + 1e-2 * torch.rand_like(model.actor.latent_pi[0].weight)
        )
    model.save(tmp_path / "fp32.zip")
    err = _cli_error(
        capsys, ["export", str(tmp_path / "fp32.zip"), "--format", "npz", "--out", out,
                 "--trust-pickle"],
    )  # fmt: skip
    assert "latent_pi.0 is not quantized" in err
    # a run folder whose summary says it was not quantized
    shutil.copytree(run, tmp_path / "unq")
    summary = json.loads((tmp_path / "unq" / "summary.json").read_text())
    (tmp_path / "unq" / "summary.json").write_text(json.dumps(summary | {"quantized": False}))
    assert "was not quantized" in _cli_error(capsys, ["export", str(tmp_path / "unq"), "--format",
                                                      "c", "--out", out])  # fmt: skip
    # corrupt artifacts: garbage, truncated, wrong version, inconsistent indices
    good = (sac_run["root"] / "policy.npz").read_bytes()
    (tmp_path / "garbage.npz").write_bytes(b"not a zip")
    (tmp_path / "trunc.npz").write_bytes(good[: len(good) // 2])
    for name in ("garbage.npz", "trunc.npz"):
        err = _cli_error(capsys, ["export", str(tmp_path / name), "--format", "c", "--out", out])
        assert "is not a valid nnc4rl-policy artifact" in err
    _rewrite(sac_run["root"] / "policy.npz", tmp_path / "v99.npz", lambda h: h | {"version": 99})
    assert "version 99" in _cli_error(capsys, ["export", str(tmp_path / "v99.npz"), "--format",
                                               "onnx", "--out", out])  # fmt: skip

    def break_shape(h):
        h["layers"][1]["shape"] = [256, 255]
        return h

    _rewrite(sac_run["root"] / "policy.npz", tmp_path / "shape.npz", break_shape)
    with pytest.raises(ArtifactError, match="not a valid"):
        load_artifact(tmp_path / "shape.npz")


def _rewrite(src, dst, edit) -> None:
    with np.load(src) as z:
        header, blob = json.loads(z["header"].tobytes()), z["blob"]
    text = json.dumps(edit(header)).encode()
    np.savez_compressed(dst, header=np.frombuffer(text, np.uint8), blob=blob)


def test_every_encoding_round_trips(tmp_path):
    """dense, csr8, csr16 and bitmask layers (picked by nnc4rl.compress.size) decode to the same codes."""
    rng = np.random.default_rng(0)

    def layer(name, shape, density, kind="linear"):
        codes = (rng.integers(1, 128, size=shape) * rng.choice([-1, 1], size=shape)).astype(np.int8)
        codes[rng.random(shape) > density] = 0
        n_scale = shape[0] if kind == "conv2d" else 1
        return Layer(name, kind, codes, rng.random(n_scale).astype(np.float32) + 0.01,
                     rng.normal(size=shape[0]).astype(np.float32), 8)  # fmt: skip

    layers = [layer("dense", (40, 20), 1.0), layer("csr8", (64, 200), 0.02),
              layer("csr16", (16, 1000), 0.01), layer("bitmask", (30, 40), 0.5)]  # fmt: skip
    ops = [{"op": "linear", "layer": 0}]  # the graph only has to be consistent for layer 0
    art = Artifact("dqn", layers, ops, {"shape": [20], "dtype": "float32", "layout": None,
                   "divide": None}, {"kind": "argmax", "n": 40})  # fmt: skip
    save_artifact(art, tmp_path / "a.npz")
    with zipfile.ZipFile(tmp_path / "a.npz") as z:
        assert sorted(z.namelist()) == ["blob.npy", "header.npy"]
    with np.load(tmp_path / "a.npz") as z:
        header = json.loads(z["header"].tobytes())
    assert [e["encoding"] for e in header["layers"]] == ["dense", "csr8", "csr16", "bitmask"]
    back = load_artifact(tmp_path / "a.npz")
    for a, b in zip(layers, back.layers, strict=True):
        np.testing.assert_array_equal(a.codes, b.codes)
        np.testing.assert_array_equal(a.scale, b.scale)
        np.testing.assert_array_equal(a.bias, b.bias)


def test_cli_integer_export_and_store_folder(sac_run, tmp_path, capsys):
    """--integer calibrates on the run's evaluation episodes; a run-store folder (policy.npz, no
    model.zip) exports; the calibrated npz keeps its scales and exports to integer C."""
    run = sac_run["root"] / "run"
    store = tmp_path / "store"
    store.mkdir()
    shutil.copy(run / "summary.json", store / "summary.json")
    save_artifact(artifact_from_path(run), store / "policy.npz")
    out = tmp_path / "int.npz"
    args = ["--calibration-episodes", "1"]
    assert (
        main(["export", str(store), "--format", "npz", "--integer", "--out", str(out), *args]) == 0
    )
    art = load_artifact(out)
    assert art.integer["calibration"]["seeds"] == [SAC_SPEC.seed + 20_000]  # held out
    assert art.integer["calibration"]["env"] == "Hopper-v4" and art.obs["dtype"] == "float64"
    assert [op.get("act_scale") is not None for op in art.ops] == [
        False, True, False, True, False, False, False]  # fmt: skip
    c_out = tmp_path / "int.c"
    assert main(["export", str(out), "--format", "c", "--integer", "--out", str(c_out)]) == 0
    assert "int8_t buf0[256]" in c_out.read_text() and "wrote" in capsys.readouterr().out
    # an artifact that does not name its env: the env must be given
    bare = load_artifact(store / "policy.npz")
    bare.info = {}
    save_artifact(bare, tmp_path / "bare.npz")
    err = _cli_error(capsys, ["export", str(tmp_path / "bare.npz"), "--format", "c", "--integer",
                              "--out", str(c_out)])  # fmt: skip
    assert "--env" in err


def test_unwritable_out_is_one_error_line(sac_run, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    npz = str(sac_run["root"] / "policy.npz")
    for fmt, name in (("npz", "p.npz"), ("onnx", "p.onnx"), ("c", "p.c")):
        err = _cli_error(capsys, ["export", npz, "--format", fmt, "--out", str(blocker / name)])
        assert "cannot write --out" in err
    assert not list(tmp_path.glob("**/.*partial*"))


def _edit_blob(src, dst, edit_header=None, edit_blob=None) -> None:
    with np.load(src) as z:
        header, blob = json.loads(z["header"].tobytes()), z["blob"].copy()
    header = edit_header(header) if edit_header else header
    blob = edit_blob(header, blob) if edit_blob else blob
    text = json.dumps(header).encode()
    np.savez_compressed(dst, header=np.frombuffer(text, np.uint8), blob=blob)


def test_loader_rejects_nan_overlap_wrong_graph_and_dtype(sac_run, tmp_path, capsys):
    good = sac_run["root"] / "policy.npz"
    assert load_artifact(good).obs["dtype"] == "float64"  # what Hopper's observation space gives

    def nan_bias(header, blob):
        off = header["layers"][0]["tensors"]["bias"][0]
        blob[off : off + 4] = np.frombuffer(np.float32(np.nan).tobytes(), np.uint8)
        return blob

    def overlap(h):
        h["layers"][1]["tensors"]["bias"][0] = h["layers"][1]["tensors"]["scale"][0]
        return h

    def no_tanh(h):
        h["ops"] = h["ops"][:-1]
        return h

    def dtype(h):
        h["obs"]["dtype"] = "float16"
        return h

    cases = {
        "nan": ({"edit_blob": nan_bias}, "NaN/Inf"),
        "overlap": ({"edit_header": overlap}, "overlap"),
        "no_tanh": ({"edit_header": no_tanh}, "must end in a linear op then tanh"),
        "dtype": ({"edit_header": dtype}, "obs.dtype='float16' is invalid"),
    }
    for name, (edit, message) in cases.items():
        _edit_blob(good, tmp_path / f"{name}.npz", **edit)
        err = _cli_error(capsys, ["export", str(tmp_path / f"{name}.npz"), "--format", "c",
                                  "--out", str(tmp_path / "x.c")])  # fmt: skip
        assert message in err, (name, err)


def test_four_bit_codes_are_stored_packed(tmp_path):
    """At 4 bits the artifact and the C arrays hold 4-bit codes: the blob is exactly what
    nnc4rl.compress.size accounts (values at 4 bits + index + fp32 bias and scale)."""
    from nnc4rl.compress.size import network_size
    from nnc4rl.export.c_export import c_source

    rng = np.random.default_rng(1)
    layers = []
    for name, shape, density in (("a", (64, 12), 1.0), ("b", (32, 64), 0.3), ("c", (3, 32), 0.05)):
        codes = rng.integers(-7, 8, size=shape).astype(np.int8)
        codes[rng.random(shape) > density] = 0
        layers.append(Layer(name, "linear", codes, np.float32([0.01]),
                            rng.normal(size=shape[0]).astype(np.float32), 4))  # fmt: skip
    ops = [{"op": "linear", "layer": 0}, {"op": "relu"}, {"op": "linear", "layer": 1},
           {"op": "relu"}, {"op": "linear", "layer": 2}, {"op": "tanh"}]  # fmt: skip
    art = Artifact("sac", layers, ops, {"shape": [12], "dtype": "float32", "layout": None,
                   "divide": None}, {"kind": "box", "low": [-1.0] * 3, "high": [1.0] * 3})  # fmt: skip
    save_artifact(art, tmp_path / "a.npz")
    with np.load(tmp_path / "a.npz") as z:
        header, blob = json.loads(z["header"].tobytes()), z["blob"]
    sizes = network_size({la.name: (torch.from_numpy(la.codes.copy()), torch.from_numpy(la.bias),
                                    False) for la in layers}, bits=4)  # fmt: skip
    assert blob.size == sizes["compressed_bytes"]
    encodings = [e["encoding"] for e in header["layers"]]
    for entry, layer, enc in zip(header["layers"], layers, encodings, strict=True):
        off, count, code = entry["tensors"]["values"]
        assert code == "p4" and count == (layer.codes.size if enc == "dense" else layer.nnz)
    back = load_artifact(tmp_path / "a.npz")
    for a, b in zip(layers, back.layers, strict=True):
        np.testing.assert_array_equal(a.codes, b.codes)
    source, _ = c_source(art)
    assert f"static const uint8_t L0_v[{(64 * 12 + 1) // 2}]" in source  # dense, 2 codes a byte
    assert "code4(" in source and "const int8_t L0_v" not in source


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_c_builds_clean_and_two_policies_link_into_one_program(sac_run, tmp_path, cc):
    """-std=c99 -Wall -Wextra -Wpedantic -Werror under gcc and clang, both arithmetic paths; two
    prefixed policies (one with a file name starting with a digit) in one program."""
    import subprocess

    from nnc4rl.export.c_build import STRICT_FLAGS
    from nnc4rl.export.integer import IntegerPolicy, calibrate

    if shutil.which(cc) is None:
        pytest.skip(f"{cc} is not installed")
    art = sac_run["art"]
    obs = np.random.default_rng(0).normal(size=(4, 11)).astype(np.float32)
    int_art = calibrate(art, obs)
    save_c(art, tmp_path / "98_hopper.c", prefix="fp")
    save_c(int_art, tmp_path / "int-hopper.c", prefix="q", integer=True)
    assert "#ifndef FP_98_HOPPER_H_" in (tmp_path / "98_hopper.h").read_text()
    rows = ", ".join(f"{float(v).hex()}f" for v in obs[0])
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\n#include "98_hopper.h"\n#include "int-hopper.h"\n'
        f"static const float obs[FP_OBS_SIZE] = {{{rows}}};\n"
        "int main(void)\n{\n    float a[FP_ACTION_SIZE], b[Q_ACTION_SIZE];\n"
        "    int32_t acc[Q_OUTPUT_SIZE];\n    int i;\n"
        "    fp_act(obs, a);\n    q_act(obs, b);\n    q_accumulators(obs, acc);\n"
        '    for (i = 0; i < FP_ACTION_SIZE; ++i) printf("%a %a %ld\\n", a[i], b[i], (long)acc[i]);\n'
        "    return 0;\n}\n"
    )
    exe = tmp_path / "two"
    files = [str(tmp_path / n) for n in ("98_hopper.c", "int-hopper.c", "main.c")]
    subprocess.run([cc, *STRICT_FLAGS, "-O2", "-ffp-contract=off", "-o", str(exe), *files, "-lm"],
                   check=True, capture_output=True, text=True)  # fmt: skip
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()
    got = np.array(out, dtype=object).reshape(-1, 3)
    fp_actions, _ = load_policy(sac_run["root"] / "policy.npz").predict(obs[0])
    int_policy = IntegerPolicy(int_art)
    np.testing.assert_allclose([float.fromhex(v) for v in got[:, 0]], fp_actions, atol=1e-5)
    np.testing.assert_array_equal([int(v) for v in got[:, 2]], int_policy.accumulators(obs[0])[0])
    np.testing.assert_allclose([float.fromhex(v) for v in got[:, 1]],
                               int_policy.predict(obs[0])[0], atol=1e-6)  # fmt: skip
    # a prefix that is not a C identifier is one error line
    with pytest.raises(ArtifactError, match="prefix='9x' is invalid"):
        save_c(art, tmp_path / "bad.c", prefix="9x")

"""A policy.npz from a stranger: the header is checked as a schema before anything is allocated,
and none of its strings reaches generated code raw (FORMAT.md "Loading untrusted files")."""

from __future__ import annotations

import io
import json
import shutil
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from nnc4rl.cli import main
from nnc4rl.export import Artifact, ArtifactError, Layer, load_artifact, load_policy, save_artifact
from nnc4rl.export.c_export import c_source
from nnc4rl.export.header import TEXT
from nnc4rl.runs.schema import CorruptRunError, validate_run_folder
from nnc4rl.runs.store import data_root

EVIL_NAME = "a */ int evil2; /* b"  # the measured injection: live C code after the comment


def small_artifact() -> Artifact:
    """A 3-layer SAC actor that uses every encoding: dense 4-bit codes (packed), CSR, bitmask."""
    rng = np.random.default_rng(0)

    def layer(name: str, shape: tuple[int, int], density: float, bits: int) -> Layer:
        q = 2 ** (bits - 1) - 1
        codes = rng.integers(-q, q + 1, size=shape).astype(np.int8)
        codes[rng.random(shape) > density] = 0
        bias = rng.normal(size=shape[0]).astype(np.float32)
        return Layer(name, "linear", codes, np.array([0.05], np.float32), bias, bits)

    layers = [layer("latent_pi.0", (64, 3), 1.0, 4), layer("latent_pi.2", (16, 64), 0.05, 8),
              layer("mu", (2, 16), 0.5, 8)]  # fmt: skip
    ops = [{"op": "linear", "layer": 0}, {"op": "relu"}, {"op": "linear", "layer": 1},
           {"op": "relu"}, {"op": "linear", "layer": 2}, {"op": "tanh"}]  # fmt: skip
    obs = {"shape": [3], "dtype": "float32", "layout": None, "divide": None}
    head = {"kind": "box", "low": [-2.0, -1.0], "high": [2.0, 1.0]}
    info = {"source": "model.zip", "env": "Pendulum-v1", "seed": 0, "sparsity": 0.5}
    return Artifact("sac", layers, ops, obs, head, info)


def write_npz(path: Path, header: object, blob: bytes) -> None:
    text = json.dumps(header).encode()
    np.savez_compressed(path, header=np.frombuffer(text, np.uint8),
                        blob=np.frombuffer(blob, np.uint8))  # fmt: skip


def read_npz(path: Path) -> tuple[dict, bytes]:
    with np.load(path) as z:
        return json.loads(z["header"].tobytes()), z["blob"].tobytes()


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("untrusted") / "good.npz"
    save_artifact(small_artifact(), path)
    header, _ = read_npz(path)
    assert [e["encoding"] for e in header["layers"]] == ["dense", "csr8", "bitmask"]
    assert header["layers"][0]["tensors"]["values"][2] == "p4"
    return path


def _edited(good: Path, dst: Path, edit) -> Path:
    header, blob = read_npz(good)
    edit(header)
    write_npz(dst, header, blob)
    return dst


def _export_fails(capsys, src: Path, out: Path) -> str:
    """``nnc4rl export SRC --format c``: exit 2, one error line, nothing written."""
    assert main(["export", str(src), "--format", "c", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == "" and "\n" not in err and err.startswith("nnc4rl export: error:")
    assert not out.exists() and not out.with_suffix(".h").exists()
    assert not list(out.parent.glob(".*partial*"))
    return err


def test_a_layer_name_that_closes_the_comment_is_refused(good, tmp_path, capsys):
    """The measured case: the name used to reach the C file as live code (exit 0)."""
    evil = _edited(good, tmp_path / "evil.npz",
                   lambda h: h["layers"][0].update(name=EVIL_NAME))  # fmt: skip
    err = _export_fails(capsys, evil, tmp_path / "p.c")
    assert (
        f"layers[0].name={EVIL_NAME!r} is invalid: 1 to 128 of A-Z a-z 0-9 _ . are allowed" in err
    )


def test_a_huge_shape_is_refused_before_allocating(good, tmp_path, capsys):
    """The measured case: ``[256, 1000000000]`` used to try a 238 GiB allocation (traceback)."""
    bomb = _edited(good, tmp_path / "bomb.npz",
                   lambda h: h["layers"][0].update(shape=[256, 1_000_000_000]))  # fmt: skip
    tracemalloc.start()
    err = _export_fails(capsys, bomb, tmp_path / "p.c")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert "layers[0].shape[1]=1000000000 is invalid: an integer in 1..1048576" in err
    assert peak < 4 << 20, peak
    # within every axis bound but too many weights, and a consistent-looking sparse layer whose
    # columns the graph cannot use: both refused from the header alone
    big = _edited(good, tmp_path / "big.npz",
                  lambda h: h["layers"][1].update(shape=[1 << 20, 1 << 10]))  # fmt: skip
    assert "at most 16777216 weights are allowed" in _export_fails(capsys, big, tmp_path / "p.c")
    wide = _edited(good, tmp_path / "wide.npz",
                   lambda h: h["layers"][1].update(shape=[16, 1 << 19]))  # fmt: skip
    assert "expects 524288 inputs" in _export_fails(capsys, wide, tmp_path / "p.c")


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        (("info", "source"), "x */ int evil; /*", "info.source="),
        (("info", "env"), "os:Evil-v0", "info.env='os:Evil-v0' is invalid: a gymnasium id"),
        (("info", "note\n#define x"), 1, "info key='note\\n#define x' is invalid"),
        (("ops", 1, "slot"), "r", "ops[1] has the unknown key 'slot'"),
        (("layers", 2, "tensors", "mask", 2), "f4", "tensors.mask[2] (dtype)='f4' is invalid"),
        (("layers", 1, "tensors", "values", 1), 10**12, "(element count)=1000000000000"),
        (("layers", 0, "tensors", "values", 0), -1, "(byte offset)=-1 is invalid"),
        (("layers", 0, "bits"), 8.0, "layers[0].bits=8.0 is invalid"),
        (("head", "low", 0), float("nan"), "head.low[0]=nan is invalid"),
        (("obs", "shape", 0), 0, "obs.shape[0]=0 is invalid"),
    ],
)
def test_every_header_field_is_checked_and_named(good, tmp_path, where, value, message):
    def edit(h):
        node = h
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = value

    with pytest.raises(ArtifactError) as exc:
        load_artifact(_edited(good, tmp_path / "bad.npz", edit))
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_npy_and_zip_sizes_are_bounded_before_reading(good, tmp_path):
    """A ``.npy`` member whose header claims more than the member holds, and a member that is
    neither header nor blob: one line each (``np.load`` would allocate the claimed size)."""
    header, blob = read_npz(good)
    lying = tmp_path / "lying.npz"
    with zipfile.ZipFile(lying, "w") as z:
        z.writestr("header.npy", _npy(json.dumps(header).encode()))
        z.writestr("blob.npy", _npy(blob, shape=(10**12,)))  # a terabyte claimed, 1 KiB held
    with pytest.raises(ArtifactError, match="blob.npy must be a 1-D uint8 array filling"):
        load_artifact(lying)
    extra = tmp_path / "extra.npz"
    shutil.copy(good, extra)
    with zipfile.ZipFile(extra, "a") as z:
        z.writestr("payload.pkl", b"\x80")
    with pytest.raises(ArtifactError, match="exactly header.npy and blob.npy are required"):
        load_artifact(extra)


def _npy(data: bytes, shape: tuple[int, ...] | None = None) -> bytes:
    """A uint8 ``.npy`` file holding ``data`` whose header claims ``shape`` (default: the truth)."""
    buf = io.BytesIO()
    fields = {"descr": "|u1", "fortran_order": False, "shape": shape or (len(data),)}
    np.lib.format.write_array_header_1_0(buf, fields)
    return buf.getvalue() + data


def test_the_writer_and_the_c_generator_refuse_or_escape_unsafe_strings(tmp_path):
    """Defence in depth: an in-memory artifact (never loaded) with unsafe strings cannot be
    saved, and its C has no trace of them (comments keep only safe characters)."""
    art = small_artifact()
    art.layers[1].name = EVIL_NAME
    art.info["source"] = "evil.zip */ #include <stdio.h> /* ??/"
    with pytest.raises(ArtifactError, match=r"layers\[1\].name="):
        save_artifact(art, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()
    source, header = c_source(art)
    for text in (EVIL_NAME, "*/ #include", "??/", "#include <stdio.h>"):
        assert text not in source + header
    assert "/* layer 1: a _/ int evil2; /_ b linear" in source
    comments = [line for line in source.splitlines() if "/*" in line]
    assert all(line.count("/*") == line.count("*/") == 1 for line in comments), comments


def test_the_store_check_of_policy_npz_uses_the_same_validator(good, tmp_path):
    """A run folder of the store whose policy.npz has an unsafe name is reported corrupt."""
    shipped = next((data_root() / "runs" / "mini").glob("*/policy.npz")).parent
    folder = tmp_path / shipped.name
    shutil.copytree(shipped, folder)
    validate_run_folder(folder)
    _edited(shipped / "policy.npz", folder / "policy.npz",
            lambda h: h["layers"][0].update(name=EVIL_NAME))  # fmt: skip
    with pytest.raises(CorruptRunError, match=r"policy.npz does not load .*layers\[0\].name="):
        validate_run_folder(folder)


# -- fuzzing -------------------------------------------------------------------------------------
EVIL_STRINGS = [EVIL_NAME, "*/", "/*", "x\ny", "#define a b", '"; system("x"); "', "it's", "??/",
                "a\\", "\x00", "\u2028", "<script>", "$(id)", "`", "a" * 300, "", "sac", "dense",
                "p4", "p9", "i1", "f4", "u4", "HWC", "argmax", "linear", "tanh", "latent_pi.0"]  # fmt: skip
NUMBERS = [0, 1, -1, 2, 3, 7, 8, 16, 255, 256, 2**16, 2**31, 2**63, 10**9, 10**30, -(2**40),
           1 << 24, float("nan"), float("inf"), -float("inf"), -0.0, 0.5, 1e308, 3.0]  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(EVIL_STRINGS), st.text(max_size=12), st.sampled_from(NUMBERS),
    st.integers(-5, 300), st.none(), st.booleans(), st.just([]), st.just({}),
    st.lists(st.integers(-3, 70), min_size=1, max_size=5), st.just({"a": 1}),
)  # fmt: skip


def _paths(node, prefix=()) -> list[tuple]:
    """Every key path into the header (containers and leaves)."""
    out = [prefix]
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for k, v in items:
        out += _paths(v, (*prefix, k))
    return out


def _mutate(header: dict, blob: bytearray, data) -> list[str]:
    """Apply one to three random edits; returns the strings it inserted."""
    inserted = []
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        what = data.draw(st.sampled_from(["replace", "replace", "replace", "delete", "add",
                                          "blob"]), label="kind")  # fmt: skip
        if what == "blob":
            if blob and data.draw(st.booleans()):
                i = data.draw(st.integers(0, len(blob) - 1))
                blob[i] = data.draw(st.integers(0, 255))
            else:
                del blob[data.draw(st.integers(0, len(blob))) :]
            continue
        path = data.draw(st.sampled_from(_paths(header)[1:]), label="path")
        parent = header
        for key in path[:-1]:
            parent = parent[key]
        value = data.draw(VALUES, label="value")
        if what == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif what == "add" and isinstance(parent, dict):
            key = data.draw(st.sampled_from(EVIL_STRINGS[:8] + ["extra"]), label="key")
            parent[key] = value
            inserted.append(key)
        else:
            parent[path[-1]] = value
        inserted += [value] if isinstance(value, str) else []
    return inserted


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # fmt: skip
@given(data=st.data())
def test_fuzzed_artifacts_load_as_valid_policies_or_fail_in_one_line(good, tmp_path, data):
    """200 examples (hypothesis ``max_examples``; a few seconds): one to three edits of a real
    artifact's header (any key: replaced by strings with comment terminators, newlines, quotes,
    ``#``, by huge / zero / negative / non-finite numbers, wrong types; deleted; unknown keys
    added) or blob (a byte changed, truncated). Each must load as a policy that predicts and
    exports to C without any inserted unsafe string, or fail with one :class:`ArtifactError`
    line from the schema (never the loader's fallback for an unexpected exception), and loading
    never allocates more than 4 MiB (the artifact is 1 KiB)."""
    header, blob = read_npz(good)
    blob = bytearray(blob)
    inserted = _mutate(header, blob, data)
    path = tmp_path / "fuzz.npz"
    write_npz(path, header, bytes(blob))
    tracemalloc.start()
    try:
        art = load_artifact(path)
    except ArtifactError as err:
        msg = str(err)
        assert "\n" not in msg and "malformed header (" not in msg, msg
        event("refused")
        return
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 4 << 20, peak
    with np.errstate(all="ignore"):  # a mutated scale may be 1e38: inf actions are still actions
        actions, _ = load_policy(art).predict(np.zeros((1, *art.obs_env_shape), np.float32))
    assert actions.shape == (1, art.action_size)
    event("loaded")
    try:
        source, h_text = c_source(art)
    except ArtifactError as err:  # e.g. a constant C cannot hold
        assert "\n" not in str(err)
        return
    for text in inserted:
        if not TEXT.fullmatch(text):
            assert text not in source + h_text, text

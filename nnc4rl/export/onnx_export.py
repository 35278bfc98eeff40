"""ONNX export: the fp32-activation QDQ graph, or the full-integer graph (``integer=True``).

**fp32 activations** (default). Every Linear / Conv2d weight is stored as an int8 initializer
(dense: ONNX operators have no sparse weights) with its fp32 scale (per tensor, or per output
channel on axis 0) and a zero point of 0; ``DequantizeLinear`` feeds ``Gemm`` / ``Conv``.
Activations stay fp32, as in the trained network (weight-only quantization, so there are no
activation Q/DQ pairs).

**Full integer** (FORMAT.md "Integer path"; the artifact must be calibrated). Standard ONNX
integer operators, at the artifact's static scales:

* input: a float observation is quantized as the reference does it, bit for bit:
  ``Mul(obs, float32(1 / s))``, ``Clip`` to the codes' bound, rounded half away from zero
  (``Sign * Floor(Abs + 0.5)``), to int16 codes (``input_bits`` 16; int8 for an artifact
  calibrated with 8); uint8 Atari frames go in as they are (codes = pixel values, scale 1/255);
* every layer: ``MatMulInteger`` / ``ConvInteger`` (int8 or uint8 activations x int8 weight
  codes, int32 accumulators) plus the int32 bias ``round(bias / (s_in s_w))`` - the accumulators
  are those of the numpy reference exactly; the first layer of int16 input codes, which
  ``MatMulInteger`` does not take, is an int32 ``MatMul`` (exact: every partial sum fits int32);
* a hidden layer requantizes ``DequantizeLinear(acc, s_in s_w)`` (axis 1, per output channel) ->
  ``QuantizeLinear(act_scale)`` -> ``Clip(lo, 127)`` (``lo`` = 0 fuses the ReLU that follows);
  ``relu`` / ``maxpool`` / ``flatten`` run on int8 codes;
* a residual ``add`` has no standard quantized operator; it is written in int64 with the
  reference's own multipliers and shift (``Mul``, ``Add``, floor division through ``Mod``), so
  it is exact;
* the last layer leaves the integer domain as the reference does:
  ``DequantizeLinear(acc, float32(s_in s_w))`` is ``float32(acc) * scale``, then ``Tanh`` and the
  action rescaling (SAC) or ``ArgMax`` (DQN).

Agreement with the numpy reference (:func:`integer_agreement` measures it): ONNX requantizes in
float (``acc * s_in s_w``, then ``/ s_out``, rounded half to even) where the reference uses a
31-bit fixed-point multiplier and a shift (rounded half up). Both compute the same real
number to about 1e-7 relative, so a hidden int8 code can differ, by one, only where that number
lies within float rounding of a half-integer (a rounding tie); everything else - the input
codes, accumulators, the residual adds, every code of an observation without such a tie, and
the DQN Q-values - is
identical, and SAC actions of tie-free observations differ only by ``Tanh``'s rounding. One
tie changes the downstream accumulators by a few weight codes, so the action moves by a small
fraction of its range; :func:`integer_agreement` reports the largest difference.

Inputs and outputs (both paths): ``obs`` (SAC ``float32 (N, obs_dim)``; DQN ``uint8 (N, H, W,
C)`` as the Atari frame stack yields it, transposed inside the graph); ``action`` (SAC
``float32 (N, A)`` in the env's bounds; DQN ``int64 (N,)``); DQN also outputs ``q_values``.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nnc4rl.export.inference import Policy
from nnc4rl.export.model import Artifact, ArtifactError

if TYPE_CHECKING:
    from nnc4rl.export.integer import AddPlan, LayerPlan

OPSET = 17
IR_VERSION = 8
# An int8 code of the ONNX graph may differ from the reference's only where the real value being
# rounded lies within this relative distance of a half-integer: a few float32 roundings (2^-24
# each) of the requantization chain, with a margin.
TIE_RTOL = 2.0**-20


class _Graph:
    """Nodes and initializers of one ONNX graph, with fresh tensor names."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._counter = itertools.count()

    def fresh(self, prefix: str) -> str:
        return f"{prefix}_{next(self._counter)}"

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], out: str | None = None, **attrs) -> str:
        """Append ``op``; its output is ``out`` (a fixed name), else a fresh one."""
        from onnx import helper

        out = out or self.fresh(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _fp32_body(g: _Graph, art: Artifact) -> str:
    """The weight-only QDQ graph from ``obs`` to the network output (fp32 activations)."""
    from onnx import TensorProto

    image = art.obs.get("layout") == "HWC"
    in_type = TensorProto.UINT8 if art.obs["dtype"] == "uint8" else TensorProto.FLOAT
    x = "obs"
    if in_type != TensorProto.FLOAT:
        x = g.node("Cast", [x], to=TensorProto.FLOAT)
    if image:
        x = g.node("Transpose", [x], perm=[0, 3, 1, 2])
    if art.obs.get("divide"):
        x = g.node("Div", [x, g.const("obs_divisor", np.float32(art.obs["divide"]))])
    slots: dict[str, str] = {}
    for i, op in enumerate(art.ops):
        kind = op["op"]
        if kind in ("linear", "conv2d"):
            layer = art.layers[op["layer"]]
            per_channel = layer.scale.size > 1 or kind == "conv2d"
            scale = layer.scale if per_channel else layer.scale.reshape(())
            scale = np.broadcast_to(scale, (layer.rows,)) if kind == "conv2d" else scale
            zero = np.zeros(scale.shape, np.int8)
            w = g.node(
                "DequantizeLinear",
                [
                    g.const(f"w{i}_int8", layer.codes),
                    g.const(f"w{i}_scale", scale.astype(np.float32)),
                    g.const(f"w{i}_zero", zero),
                ],  # fmt: skip
                **({"axis": 0} if per_channel else {}),
            )
            b = g.const(f"b{i}", layer.bias)
            if kind == "linear":
                x = g.node("Gemm", [x, w, b], transB=1)
            else:
                (ph, pw), kh, kw = op["padding"], *layer.codes.shape[2:]
                x = g.node("Conv", [x, w, b], kernel_shape=[kh, kw], strides=op["stride"],
                           pads=[ph, pw, ph, pw])  # fmt: skip
        elif kind == "relu":
            x = g.node("Relu", [x])
        elif kind in _SAME_IN_BOTH_GRAPHS:
            x = _same_in_both_graphs(g, op, x)
        elif kind == "save":
            slots[op["slot"]] = x
        elif kind == "add":
            x = g.node("Add", [x, slots[op["slot"]]])
    return x


_SAME_IN_BOTH_GRAPHS = ("tanh", "flatten", "maxpool")


def _same_in_both_graphs(g: _Graph, op: dict, x: str) -> str:
    """An op that the fp32 and the integer graph write the same way."""
    kind = op["op"]
    if kind == "tanh":
        return g.node("Tanh", [x])
    if kind == "flatten":
        return g.node("Flatten", [x], axis=1)
    (ph, pw) = op["padding"]
    return g.node("MaxPool", [x], kernel_shape=op["kernel"], strides=op["stride"],
                  pads=[ph, pw, ph, pw])  # fmt: skip


def input_codes_name() -> str:
    """Name of the input codes in the integer graph (float observations only)."""
    return "q_input"


def layer_names(i: int) -> tuple[str, str]:
    """Names of op ``i``'s int32 accumulators and of its output (int8 codes; float32 for the
    output layer) in the integer graph."""
    return f"acc{i}", f"x{i}"


def _integer_layer(
    g: _Graph, art: Artifact, i: int, x: str, entry: LayerPlan, wide: bool = False
) -> str:
    """One linear / conv op: integer matmul or conv, int32 bias, then requantize (or leave the
    integer domain, for the output layer).

    :param wide: ``x`` holds int32 codes (the int16 input of a float observation): an int32
        ``MatMul`` replaces ``MatMulInteger``.
    """
    from onnx import TensorProto

    op, layer = art.ops[i], art.layers[art.ops[i]["layer"]]
    acc_name, out_name = layer_names(i)
    if wide and op["op"] != "linear":
        raise ArtifactError(f"op {i}: int16 input codes need a linear first layer")
    if op["op"] == "linear":
        w = g.const(f"w{i}_int8", np.ascontiguousarray(layer.matrix.T))
        if wide:
            acc = g.node("MatMul", [x, g.node("Cast", [w], to=TensorProto.INT32)])
        else:
            acc = g.node("MatMulInteger", [x, w])
        bias = entry.bias.astype(np.int32)
    else:
        (ph, pw), kh, kw = op["padding"], *layer.codes.shape[2:]
        acc = g.node("ConvInteger", [x, g.const(f"w{i}_int8", layer.codes)], kernel_shape=[kh, kw],
                     strides=op["stride"], pads=[ph, pw, ph, pw])  # fmt: skip
        bias = entry.bias.astype(np.int32).reshape(-1, 1, 1)
    acc = g.node("Add", [acc, g.const(f"b{i}_int32", bias)], out=acc_name)
    if i == art.output_op:  # float32(acc) * float32(s_in s_w), as the reference computes it
        return g.node("DequantizeLinear", [acc, g.const(f"s{i}_acc", entry.out_scale)], out=out_name,
                      axis=1)  # fmt: skip
    real = g.node("DequantizeLinear", [acc, g.const(f"s{i}_acc", entry.out_scale)], axis=1)
    q = g.node("QuantizeLinear", [real, g.const(f"s{i}_out", np.float32(art.ops[i]["act_scale"])),
                                  g.const(f"z{i}_out", np.int8(0))])  # fmt: skip
    return g.node("Clip", [q, g.const(f"lo{i}", np.int8(entry.lo)), "qmax"], out=out_name)


def _integer_add(g: _Graph, i: int, x: str, r: str, entry: AddPlan) -> str:
    """The reference's residual add, exactly: ``clamp((x mx + r mr + 2^(k-1)) >> k)`` in int64
    (the arithmetic shift is a floor division: ``t - Mod(t, 2^k)`` is a multiple of ``2^k``)."""
    from onnx import TensorProto

    def i64(name: str, value: int) -> str:
        return g.const(f"{name}{i}", np.int64(value))

    xs = g.node("Mul", [g.node("Cast", [x], to=TensorProto.INT64), i64("mx", entry.mx)])
    rs = g.node("Mul", [g.node("Cast", [r], to=TensorProto.INT64), i64("mr", entry.mr)])
    t = g.node("Add", [g.node("Add", [xs, rs]), i64("half", 1 << (entry.k - 1))])
    d = i64("div", 1 << entry.k)
    t = g.node("Div", [g.node("Sub", [t, g.node("Mod", [t, d], fmod=0)]), d])
    t = g.node("Clip", [t, g.const(f"lo{i}", np.int64(-127)), g.const(f"hi{i}", np.int64(127))])
    return g.node("Cast", [t], out=layer_names(i)[1], to=TensorProto.INT8)


def _integer_body(g: _Graph, art: Artifact) -> str:
    """The full-integer graph from ``obs`` to the network output (module docstring)."""
    from onnx import TensorProto

    from nnc4rl.export.integer import QMAX, integer_plan

    plan = integer_plan(art)
    g.const("qmax", np.int8(QMAX))
    x = "obs"
    if art.obs.get("layout") == "HWC":
        x = g.node("Transpose", [x], perm=[0, 3, 1, 2])
    wide = not art.image and plan.input_qmax > QMAX
    if not art.image:  # uint8 frames are their own codes; float observations are quantized
        bound = np.float32(plan.input_qmax)
        v = g.node("Mul", [x, g.const("inv_input_scale", plan.inv_input_scale)])
        v = g.node("Clip", [v, g.const("input_lo", -bound), g.const("input_hi", bound)])
        half = g.node("Add", [g.node("Abs", [v]), g.const("input_half", np.float32(0.5))])
        q = g.node("Mul", [g.node("Sign", [v]), g.node("Floor", [half])])
        x = g.node("Cast", [q], out=input_codes_name(),
                   to=TensorProto.INT32 if wide else TensorProto.INT8)  # fmt: skip
    slots: dict[str, str] = {}
    fused = False  # the previous layer's clamp already applied this ReLU
    for i, (op, entry) in enumerate(zip(art.ops, plan.ops, strict=True)):
        kind = op["op"]
        if kind in ("linear", "conv2d"):
            x = _integer_layer(g, art, i, x, entry, wide)
            wide = False  # only the first layer reads the input codes
        elif kind == "relu" and not fused:
            x = g.node("Relu", [x])
        elif kind in _SAME_IN_BOTH_GRAPHS:
            x = _same_in_both_graphs(g, op, x)
        elif kind == "save":
            slots[op["slot"]] = x
        elif kind == "add":
            x = _integer_add(g, i, x, slots[op["slot"]], entry)
        elif kind != "relu":
            raise ArtifactError(f"op {i} ({kind}) is not supported by the integer ONNX export")
        fused = kind in ("linear", "conv2d") and entry.lo == 0
    return x


def to_onnx(art: Artifact, integer: bool = False):
    """Build the ``onnx.ModelProto`` of ``art`` (checked with ``onnx.checker``).

    :param integer: the full-integer graph (int8 activations at the artifact's calibrated
        scales; see the module docstring), else the weight-only graph with fp32 activations.
    :raises ArtifactError: ``integer`` and the artifact is not calibrated.
    """
    import onnx
    from onnx import TensorProto, helper

    g = _Graph()
    x = _integer_body(g, art) if integer else _fp32_body(g, art)
    in_type = TensorProto.UINT8 if art.obs["dtype"] == "uint8" else TensorProto.FLOAT
    if art.head["kind"] == "argmax":
        g.nodes.append(helper.make_node("Identity", [x], ["q_values"], name="q_values"))
        g.nodes.append(helper.make_node("ArgMax", [x], ["action"], name="argmax", axis=1,
                                        keepdims=0))  # fmt: skip
        outputs = [
            helper.make_tensor_value_info("action", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("q_values", TensorProto.FLOAT, ["N", art.n_outputs]),
        ]
    elif art.head["kind"] == "clip":  # max(min(y, high), low): SB3's np.clip, per dimension
        low = np.asarray(art.head["low"], np.float32)
        high = np.asarray(art.head["high"], np.float32)
        t = g.node("Min", [x, g.const("action_high", high)])
        g.nodes.append(
            helper.make_node("Max", [t, g.const("action_low", low)], ["action"], name="clip")
        )
        outputs = [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["N", art.n_outputs])]
    else:  # low + (0.5 * (y + 1)) * (high - low), in that float32 order (as SB3's unscale_action)
        low = np.asarray(art.head["low"], np.float32)
        high = np.asarray(art.head["high"], np.float32)
        t = g.node("Add", [x, g.const("one", np.float32(1.0))])
        t = g.node("Mul", [t, g.const("half", np.float32(0.5))])
        t = g.node("Mul", [t, g.const("action_range", (high - low).astype(np.float32))])
        g.nodes.append(
            helper.make_node("Add", [g.const("action_low", low), t], ["action"], name="unscale")
        )
        outputs = [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["N", art.n_outputs])]
    graph = helper.make_graph(
        g.nodes,
        f"nnc4rl_{art.algo}_policy",
        [helper.make_tensor_value_info("obs", in_type, ["N", *art.obs_env_shape])],
        outputs,
        g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="nnc4rl",
        ir_version=IR_VERSION,
    )
    if integer:
        model.doc_string = (f"nnc4rl {art.algo} policy, int{art.bits} weights, full-integer "
                            "path: int8 activations, int32 accumulators")  # fmt: skip
        helper.set_model_props(model, {"nnc4rl.integer": json.dumps(art.integer)})
    else:
        model.doc_string = (
            f"nnc4rl {art.algo} policy, int{art.bits} weights (QDQ), fp32 activations"
        )
    onnx.checker.check_model(model)
    return model


def save_onnx(art: Artifact, path: str | Path, integer: bool = False) -> int:
    """Write the ONNX model of ``art`` to ``path``; returns the bytes written.

    :param integer: the full-integer graph (``art`` must be calibrated).
    """
    from nnc4rl.core.atomic import write_atomic

    model = to_onnx(art, integer)  # before touching the file system: a refused model writes nothing
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, model.SerializeToString())


def _session(source: str | bytes, threads: int = 1):
    """An onnxruntime CPU session of a model file (path) or serialized model (bytes)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own exception types
        what = "the model" if isinstance(source, bytes) else repr(source)
        raise ArtifactError(f"{what} is not a loadable ONNX model ({type(err).__name__})") from None


class OnnxPolicy(Policy):
    """An onnxruntime session with SB3's ``predict`` interface (1 intra-op thread by default).

    Either export of ``art`` (fp32 activations or the integer graph) runs the same way.
    """

    def __init__(self, art: Artifact, path: str | Path, threads: int = 1):
        self.session = _session(str(path), threads)
        dtype = np.uint8 if art.obs["dtype"] == "uint8" else np.float32
        output = "q_values" if art.head["kind"] == "argmax" else "action"

        def outputs(obs: np.ndarray) -> np.ndarray:
            return self.session.run([output], {"obs": np.ascontiguousarray(obs, dtype)})[0]

        super().__init__(art, outputs)

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        """Actions straight from the graph's ``action`` output (argmax / rescaling inside)."""
        obs, single = self._batch(observation)
        dtype = np.uint8 if self.artifact.obs["dtype"] == "uint8" else np.float32
        actions = self.session.run(["action"], {"obs": np.ascontiguousarray(obs, dtype)})[0]
        return (actions[0] if single else actions), None


def _with_outputs(model, names: list[str]):
    """A copy of ``model`` that also outputs the intermediate tensors ``names``."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    info = {v.name: v for v in inferred.graph.value_info}
    out = onnx.ModelProto()
    out.CopyFrom(model)
    out.graph.output.extend(info[n] for n in names)
    return out


def _tie_check(codes: np.ndarray, ref: np.ndarray, real: np.ndarray) -> dict[str, Any]:
    """Compare the ONNX codes of one tensor with the reference's computed from the same
    accumulators (or observations); ``real`` is the value both round.

    :returns: ``values``, ``differ`` (codes that differ), ``max_code_diff`` and ``at_ties``
        (every differing code is off by one and its ``real`` lies within ``TIE_RTOL`` of a
        half-integer), and the per-observation mask ``rows`` of observations with a difference.
    """
    diff = codes.astype(np.int64) - ref.astype(np.int64)
    bad = diff != 0
    dist = np.abs(np.abs(real - np.floor(real)) - 0.5)  # distance to the nearest half-integer
    tie = dist <= TIE_RTOL * np.maximum(np.abs(real), 1.0)
    return {
        "values": int(bad.size),
        "differ": int(bad.sum()),
        "max_code_diff": int(np.abs(diff).max(initial=0)),
        "at_ties": bool(np.all(tie[bad]) and np.all(np.abs(diff[bad]) == 1)),
        "rows": bad.reshape(len(bad), -1).any(axis=1),
    }


def integer_agreement(art: Artifact, obs: np.ndarray, threads: int = 1) -> dict[str, Any]:
    """Measure the integer ONNX graph of ``art`` against the numpy reference
    (:mod:`nnc4rl.export.integer`) on env observations ``obs`` ``(N, *obs_env_shape)``.

    Every tensor the graph rounds (the int16 / int8 input codes of float observations, each
    hidden layer's requantized int8 output) is compared with the reference's rounding of the same
    input:
    the graph's own accumulators (exact in both) through the fixed-point multiplier and shift.

    :returns: ``observations``; ``tensors``: per rounded tensor (``name``, ``values``,
        ``differ``, ``max_code_diff``, ``at_ties``: all differences are one code at a rounding
        tie); ``codes_identical``: fraction of observations whose every int8 code is the
        reference's; ``accumulators_identical``: the output layer's int32 accumulators equal the
        reference's on all those observations; SAC: ``action_max_abs_diff`` (all observations)
        and ``action_max_abs_diff_identical`` (those), env units; DQN: ``greedy_agree``
        (fraction of equal greedy actions) and ``q_values_identical`` (bit for bit on those).
    """
    from nnc4rl.export.inference import head
    from nnc4rl.export.integer import (
        _requant,
        integer_accumulators,
        integer_outputs,
        integer_plan,
        quantize_input,
    )

    plan, obs = integer_plan(art), np.asarray(obs)
    hidden = [i for i, op in enumerate(art.ops)
              if op["op"] in ("linear", "conv2d") and i != art.output_op]  # fmt: skip
    names = ([] if art.image else [input_codes_name()]) + [
        n for i in hidden for n in layer_names(i)
    ]
    names.append(layer_names(art.output_op)[0])
    heads = ["action", "q_values"] if art.head["kind"] == "argmax" else ["action"]
    session = _session(
        _with_outputs(to_onnx(art, integer=True), names).SerializeToString(), threads
    )
    feed = np.ascontiguousarray(obs, np.uint8 if art.image else np.float32)
    got = dict(zip(heads + names, session.run(heads + names, {"obs": feed}), strict=True))
    checks = []
    if not art.image:  # computed as the reference does: identical codes, no ties to excuse
        real = np.zeros(obs.shape, np.float64)
        ref = quantize_input(art, plan, obs)
        checks.append({"name": input_codes_name()} | _tie_check(got[names[0]], ref, real))
    for i in hidden:
        acc_name, out_name = layer_names(i)
        acc, entry = got[acc_name].astype(np.int64), plan.ops[i]
        shape = [1, -1] + [1] * (acc.ndim - 2)
        real = acc * (entry.mult * 2.0 ** -entry.shift.astype(np.float64)).reshape(shape)
        checks.append({"name": out_name} | _tie_check(got[out_name], _requant(acc, entry, 1), real))
    same = ~np.any([c.pop("rows") for c in checks], axis=0) if checks else np.ones(len(obs), bool)
    ref_acc = integer_accumulators(art, obs, plan)
    out = {
        "observations": len(obs),
        "tensors": checks,
        "codes_identical": float(same.mean()),
        "accumulators_identical": bool(np.array_equal(got[names[-1]][same], ref_acc[same])),
    }
    ref_y = integer_outputs(art, obs, plan)
    ref_action = head(art, ref_y)
    if art.head["kind"] == "argmax":
        out["greedy_agree"] = float(np.mean(got["action"] == ref_action))
        out["q_values_identical"] = bool(np.array_equal(got["q_values"][same], ref_y[same]))
    else:
        diff = np.abs(got["action"].astype(np.float64) - ref_action)
        out["action_max_abs_diff"] = float(diff.max())
        out["action_max_abs_diff_identical"] = float(diff[same].max(initial=0.0))
    return out

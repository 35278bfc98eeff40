"""ONNX export in the standard QDQ form: int8 weight initializers + ``DequantizeLinear``.

Every Linear / Conv2d weight is stored as an int8 initializer (dense: ONNX operators have no
sparse weights) with its fp32 scale (per tensor, or per output channel on axis 0) and a zero
point of 0; ``DequantizeLinear`` feeds ``Gemm`` / ``Conv``. Activations stay fp32, as in the
trained network (weight-only quantization, so there are no activation Q/DQ pairs).

Inputs and outputs: ``obs`` (SAC ``float32 (N, obs_dim)``; DQN ``uint8 (N, H, W, C)`` as the
Atari frame stack yields it, transposed and divided by 255 inside the graph); ``action`` (SAC
``float32 (N, A)`` in the env's bounds; DQN ``int64 (N,)``); DQN also outputs ``q_values``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nnc4rl.export.inference import Policy
from nnc4rl.export.model import Artifact, ArtifactError

OPSET = 17
IR_VERSION = 8


def to_onnx(art: Artifact):
    """Build the ``onnx.ModelProto`` of ``art`` (checked with ``onnx.checker``)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    counter = iter(range(1_000_000))

    def fresh(prefix: str) -> str:
        return f"{prefix}_{next(counter)}"

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op: str, inputs: list[str], **attrs) -> str:
        out = fresh(op.lower())
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    image = art.obs.get("layout") == "HWC"
    env_shape = list(art.obs_env_shape)
    in_type = TensorProto.UINT8 if art.obs["dtype"] == "uint8" else TensorProto.FLOAT
    x = "obs"
    if in_type != TensorProto.FLOAT:
        x = node("Cast", [x], to=TensorProto.FLOAT)
    if image:
        x = node("Transpose", [x], perm=[0, 3, 1, 2])
    if art.obs.get("divide"):
        x = node("Div", [x, const("obs_divisor", np.float32(art.obs["divide"]))])
    slots: dict[str, str] = {}
    for i, op in enumerate(art.ops):
        kind = op["op"]
        if kind in ("linear", "conv2d"):
            layer = art.layers[op["layer"]]
            per_channel = layer.scale.size > 1 or kind == "conv2d"
            scale = layer.scale if per_channel else layer.scale.reshape(())
            scale = np.broadcast_to(scale, (layer.rows,)) if kind == "conv2d" else scale
            zero = np.zeros(scale.shape, np.int8)
            w = node(
                "DequantizeLinear",
                [
                    const(f"w{i}_int8", layer.codes),
                    const(f"w{i}_scale", scale.astype(np.float32)),
                    const(f"w{i}_zero", zero),
                ],  # fmt: skip
                **({"axis": 0} if per_channel else {}),
            )
            b = const(f"b{i}", layer.bias)
            if kind == "linear":
                x = node("Gemm", [x, w, b], transB=1)
            else:
                (ph, pw), kh, kw = op["padding"], *layer.codes.shape[2:]
                x = node("Conv", [x, w, b], kernel_shape=[kh, kw], strides=op["stride"],
                         pads=[ph, pw, ph, pw])  # fmt: skip
        elif kind == "relu":
            x = node("Relu", [x])
        elif kind == "tanh":
            x = node("Tanh", [x])
        elif kind == "flatten":
            x = node("Flatten", [x], axis=1)
        elif kind == "maxpool":
            (ph, pw) = op["padding"]
            x = node("MaxPool", [x], kernel_shape=op["kernel"], strides=op["stride"],
                     pads=[ph, pw, ph, pw])  # fmt: skip
        elif kind == "save":
            slots[op["slot"]] = x
        elif kind == "add":
            x = node("Add", [x, slots[op["slot"]]])
    outputs = []
    if art.head["kind"] == "argmax":
        nodes.append(helper.make_node("Identity", [x], ["q_values"], name="q_values"))
        nodes.append(helper.make_node("ArgMax", [x], ["action"], name="argmax", axis=1, keepdims=0))
        outputs = [
            helper.make_tensor_value_info("action", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("q_values", TensorProto.FLOAT, ["N", art.n_outputs]),
        ]
    else:  # low + (0.5 * (y + 1)) * (high - low), in that float32 order (as SB3's unscale_action)
        low = np.asarray(art.head["low"], np.float32)
        high = np.asarray(art.head["high"], np.float32)
        t = node("Add", [x, const("one", np.float32(1.0))])
        t = node("Mul", [t, const("half", np.float32(0.5))])
        t = node("Mul", [t, const("action_range", (high - low).astype(np.float32))])
        nodes.append(
            helper.make_node("Add", [const("action_low", low), t], ["action"], name="unscale")
        )
        outputs = [helper.make_tensor_value_info("action", TensorProto.FLOAT, ["N", art.n_outputs])]
    graph = helper.make_graph(
        nodes,
        f"nnc4rl_{art.algo}_policy",
        [helper.make_tensor_value_info("obs", in_type, ["N", *env_shape])],
        outputs,
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="nnc4rl",
        ir_version=IR_VERSION,
    )
    model.doc_string = f"nnc4rl {art.algo} policy, int{art.bits} weights (QDQ), fp32 activations"
    onnx.checker.check_model(model)
    return model


def save_onnx(art: Artifact, path: str | Path) -> int:
    """Write the ONNX model of ``art`` to ``path``; returns the bytes written."""

    from nnc4rl.atomic import write_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, to_onnx(art).SerializeToString())


class OnnxPolicy(Policy):
    """An onnxruntime session with SB3's ``predict`` interface (1 intra-op thread by default)."""

    def __init__(self, art: Artifact, path: str | Path, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ArtifactError(
                f"{str(path)!r} is not a loadable ONNX model ({type(err).__name__})"
            ) from None
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

"""Building an artifact from a trained SB3 model (FORMAT.md "What can be exported").

The SB3 network is walked module by module (:class:`_Tracer`); every Linear / Conv2d weight must
already lie on a symmetric b-bit grid (the model was trained with ``--quantize``), and its codes
and scale are recovered exactly (:func:`grid_codes`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from nnc4rl.compress.quant import qmax, weight_scale
from nnc4rl.export.header import safe_text
from nnc4rl.export.model import Artifact, ArtifactError, Layer

GRID_TOLERANCE = 1e-3  # largest distance of w / scale from an integer that counts as "on grid"


def grid_codes(weight: np.ndarray, bits: int, per_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Recover ``(codes int8, scale float32)`` of a weight already on a ``bits``-bit grid.

    The scale is :func:`nnc4rl.compress.quant.weight_scale` (``max|w| / qmax`` per tensor or per output
    channel, as in training); raises :class:`ArtifactError` if some ``w / scale`` is more than
    ``GRID_TOLERANCE`` from an integer. Among the float32 neighbours of the scale, one for which
    ``codes * scale`` reproduces the weight bit for bit is preferred.
    """
    import torch

    w = np.asarray(weight, dtype=np.float32)
    rows = w.reshape(w.shape[0], -1) if per_channel else w.reshape(1, -1)
    scale = weight_scale(torch.from_numpy(rows.copy()), bits, per_channel)
    scale = scale.reshape(-1).numpy().astype(np.float32).copy()
    exact = rows.astype(np.float64) / scale.astype(np.float64)[:, None]
    codes = np.rint(exact)
    off = float(np.abs(exact - codes).max()) if exact.size else 0.0
    if off > GRID_TOLERANCE or np.abs(codes).max(initial=0) > qmax(bits):
        raise ArtifactError(f"off-grid by {off:.3g} at {bits} bits")
    codes = codes.astype(np.int8)
    for r in range(rows.shape[0]):  # prefer a scale that reproduces the weights exactly
        for cand in (scale[r], *_neighbours(scale[r])):
            if np.array_equal(codes[r].astype(np.float32) * cand, rows[r]):
                scale[r] = cand
                break
    return codes.reshape(w.shape), scale


def _neighbours(x: np.float32, n: int = 3) -> list[np.float32]:
    out, up, down = [], x, x
    for _ in range(n):
        up, down = np.nextafter(up, np.float32(np.inf)), np.nextafter(down, np.float32(0))
        out += [up, down]
    return out


def _is(module, cls: type) -> bool:
    """``isinstance``, or the same class by name: a model.zip carries nnc4rl's network classes
    by value (so plain SB3 loads it), and loading it makes new class objects of the same name."""
    return isinstance(module, cls) or type(module).__qualname__ == cls.__qualname__


class _Tracer:
    """Turns the modules of an SB3 network into artifact ops and layers (forward order)."""

    def __init__(self, root, bits_candidates: list[int]):
        self.names = {id(m): n for n, m in root.named_modules()}
        self.bits_candidates = bits_candidates
        self.layers: list[Layer] = []
        self.ops: list[dict[str, Any]] = []
        self._slot = 0

    def _add_layer(self, module, kind: str) -> int:
        name = self.names.get(id(module), type(module).__name__)
        w = module.weight.detach().cpu().float().numpy()
        b = module.bias
        bias = (
            b.detach().cpu().float().numpy() if b is not None else np.zeros(w.shape[0], np.float32)
        )
        per_channel = kind == "conv2d"
        errors = []
        for bits in self.bits_candidates:
            try:
                codes, scale = grid_codes(w, bits, per_channel)
                break
            except ArtifactError as err:
                errors.append(str(err))
        else:
            tried = ", ".join(str(b) for b in self.bits_candidates)
            raise ArtifactError(
                f"layer {name} is not quantized (weights are not on a {tried}-bit grid: "
                f"{errors[0]}); only models trained with --quantize can be exported"
            )
        self.layers.append(Layer(name, kind, codes, scale, bias.astype(np.float32), bits))
        return len(self.layers) - 1

    def _conv(self, m) -> None:
        if m.groups != 1 or tuple(m.dilation) != (1, 1) or m.padding_mode != "zeros":
            raise ArtifactError(
                f"conv {self.names.get(id(m))}: groups/dilation/padding mode unsupported"
            )
        if isinstance(m.padding, str):
            raise ArtifactError(f"conv {self.names.get(id(m))}: string padding is unsupported")
        layer = self._add_layer(m, "conv2d")
        self.ops.append(
            {"op": "conv2d", "layer": layer, "stride": list(m.stride), "padding": list(m.padding)}
        )

    def _maxpool(self, m) -> None:
        if m.ceil_mode or m.dilation not in (1, (1, 1)):
            raise ArtifactError("MaxPool2d with ceil_mode or dilation is unsupported")

        def pair(v):
            return list(v) if isinstance(v, (tuple, list)) else [v, v]

        self.ops.append({"op": "maxpool", "kernel": pair(m.kernel_size), "stride": pair(m.stride),
                         "padding": pair(m.padding)})  # fmt: skip

    def _residual(self, m) -> None:  # nnc4rl.compress.networks: x + conv1(relu(conv0(relu(x))))
        slot = f"r{self._slot}"
        self._slot += 1
        self.ops += [{"op": "save", "slot": slot}, {"op": "relu"}]
        self.visit(m.conv0)
        self.ops.append({"op": "relu"})
        self.visit(m.conv1)
        self.ops.append({"op": "add", "slot": slot})

    def visit(self, m) -> None:
        from torch import nn

        from nnc4rl.compress.networks import ImpalaCNN, ImpalaStage, ResidualBlock

        simple = {nn.ReLU: "relu", nn.Tanh: "tanh"}
        if isinstance(m, nn.Sequential):
            for child in m:
                self.visit(child)
        elif isinstance(m, nn.Linear):
            self.ops.append({"op": "linear", "layer": self._add_layer(m, "linear")})
        elif isinstance(m, nn.Conv2d):
            self._conv(m)
        elif type(m) in simple:
            self.ops.append({"op": simple[type(m)]})
        elif isinstance(m, nn.Flatten):
            if m.start_dim != 1 or m.end_dim != -1:
                raise ArtifactError("only Flatten(start_dim=1) is supported")
            self.ops.append({"op": "flatten"})
        elif isinstance(m, nn.MaxPool2d):
            self._maxpool(m)
        elif _is(m, ResidualBlock):
            self._residual(m)
        elif _is(m, ImpalaStage):  # conv -> maxpool -> res0 -> res1
            for child in (m.conv, m.pool, m.res0, m.res1):
                self.visit(child)
        elif _is(m, ImpalaCNN) or type(m).__name__ == "NatureCNN":
            self.visit(m.cnn)  # cnn Sequential then linear Sequential
            self.visit(m.linear)
        elif type(m).__name__ == "FlattenExtractor":
            self.ops.append({"op": "flatten"})
        else:
            raise ArtifactError(
                f"module {type(m).__name__} ({self.names.get(id(m))}) is not supported by export"
            )


def _deployed_parts(model) -> tuple[str, object, list, dict]:
    """``(algo, root, modules in forward order, head)`` of the network an SB3 model deploys
    (:mod:`nnc4rl.compress.algos`); ``head`` lacks the action bounds."""
    from gymnasium import spaces

    from nnc4rl.compress.algos import algo_of

    try:
        info = algo_of(model)
    except TypeError as err:
        raise ArtifactError(str(err)) from None
    policy = model.policy
    if info.head == "squash":  # SAC / TQC: tanh(mu(latent_pi(features)))
        actor = policy.actor
        if actor.use_sde:
            raise ArtifactError(f"{info.class_name} with gSDE (use_sde=True) is unsupported")
        return (
            info.name,
            actor,
            [actor.features_extractor, actor.latent_pi, actor.mu, "tanh"],
            {"kind": "box"},
        )
    if info.head == "deterministic":  # TD3 / DDPG: mu ends in its own Tanh
        actor = policy.actor
        return info.name, actor, [actor.features_extractor, actor.mu], {"kind": "box"}
    if info.head == "gaussian":  # PPO / A2C: the action path of the actor-critic policy
        if policy.squash_output:
            raise ArtifactError(f"{info.class_name} with squash_output=True is unsupported")
        parts = [policy.pi_features_extractor, policy.mlp_extractor.policy_net, policy.action_net]
        if isinstance(model.action_space, spaces.Discrete):
            return info.name, policy, parts, {"kind": "argmax", "n": int(model.action_space.n)}
        if not isinstance(model.action_space, spaces.Box):
            raise ArtifactError(
                f"{info.class_name} with action space {model.action_space} is unsupported: "
                "Box or Discrete is required"
            )
        return info.name, policy, parts, {"kind": "clip"}
    q_net = policy.q_net  # DQN
    return (
        info.name,
        q_net,
        [q_net.features_extractor, q_net.q_net],
        {"kind": "argmax", "n": int(model.action_space.n)},
    )


def artifact_from_sb3(model, bits: int | None = None, info: dict | None = None) -> Artifact:
    """Build the artifact of a trained, quantized SB3 model: the deployed network of its
    registry entry (SAC / TQC / TD3 / DDPG: the actor; DQN: the Q-network; PPO / A2C: features
    extractor + ``mlp_extractor.policy_net`` + ``action_net``, the mean action or the logits).

    :param bits: the grid's bit width; ``None`` tries 8, 7, ..., 2 and takes the first grid that
        holds every weight of a layer.
    :raises ArtifactError: if a weight is not on the grid (the model was not quantized), the
        algorithm is not supported or the network has a module export does not know.
    """
    from gymnasium import spaces
    from stable_baselines3.common.preprocessing import is_image_space

    candidates = [bits] if bits is not None else list(range(8, 1, -1))
    policy = model.policy
    space = policy.observation_space
    if not isinstance(space, spaces.Box):
        raise ArtifactError(f"observation space {space} is unsupported: a Box is required")
    image = is_image_space(space) and len(space.shape) == 3
    if image and not policy.normalize_images:
        raise ArtifactError("image observations without normalize_images are unsupported")
    dtype = np.dtype(space.dtype).name
    if dtype not in ("float32", "float64", "uint8") or (dtype == "uint8") != image:
        raise ArtifactError(f"observation dtype {dtype} is unsupported")
    obs = {"shape": list(space.shape), "dtype": dtype, "layout": "HWC" if image else None,
           "divide": 255.0 if image else None}  # fmt: skip
    algo, root, parts, head = _deployed_parts(model)
    tracer = _Tracer(root, candidates)
    for part in parts:
        if part == "tanh":
            tracer.ops.append({"op": "tanh"})
        else:
            tracer.visit(part)
    if head["kind"] in ("box", "clip"):
        head["low"] = model.action_space.low.astype(np.float32).tolist()
        head["high"] = model.action_space.high.astype(np.float32).tolist()
    if not tracer.layers:
        raise ArtifactError("the network has no Linear/Conv2d layer")
    art = Artifact(algo, tracer.layers, tracer.ops, obs, head, dict(info or {}))
    art.check()
    art.info.setdefault("sparsity", round(art.sparsity(), 6))
    art.info.setdefault("bits", art.bits)
    return art


def weights_into_sb3(art: Artifact, model):
    """Write an artifact's weights into an SB3 model of the same architecture: the inverse of
    :func:`artifact_from_sb3`. Each weight becomes ``codes * scale`` in float32, the value the
    quantized training run baked into its network, so the model then computes what was
    evaluated (SAC: the actor's deterministic path, ``log_std`` is not deployed and is left as
    it is; PPO / A2C: the action path, the value branch is left as it is; a target network,
    DQN's or TD3's, is copied from the network).

    :param model: an SB3 model of the artifact's algorithm whose policy has the artifact's layers.
    :returns: ``model``.
    :raises ArtifactError: the algorithm or a layer's name or shape does not match.
    """
    import torch

    from nnc4rl.compress.algos import algo_of

    try:
        entry = algo_of(model)
    except TypeError as err:
        raise ArtifactError(str(err)) from None
    if entry.name != art.algo:
        raise ArtifactError(f"the artifact holds a {art.algo} policy, the model is {entry.name}")
    root = model.policy.get_submodule(entry.root) if entry.root else model.policy
    with torch.no_grad():
        for layer in art.layers:
            try:
                module = root.get_submodule(layer.name)
            except AttributeError:
                raise ArtifactError(f"the model has no layer {layer.name!r}") from None
            weight = torch.from_numpy(layer.weight())
            if tuple(module.weight.shape) != tuple(weight.shape):
                raise ArtifactError(
                    f"layer {layer.name!r}: the model has shape {tuple(module.weight.shape)}, "
                    f"the artifact {tuple(weight.shape)}"
                )
            module.weight.copy_(weight)
            if module.bias is not None:
                module.bias.copy_(torch.from_numpy(np.asarray(layer.bias, np.float32)))
        if entry.mirror is not None:
            model.policy.get_submodule(entry.mirror).load_state_dict(root.state_dict())
    return model


def saved_algo(path: str | Path) -> str:
    """The registry name of the algorithm that saved ``model.zip`` (read from its data and
    tensors; loading its data runs the pickles it holds, as ``Algo.load`` does).

    :raises ArtifactError: the file is not a readable SB3 model of a supported algorithm.
    """
    from stable_baselines3.common.save_util import load_from_zip_file

    from nnc4rl.compress.algos import algo_of_keys

    path = Path(path)
    try:
        data, params, _ = load_from_zip_file(path, device="cpu", print_system_info=False)
        layout = algo_of_keys(params["policy"].keys())
    except ValueError as err:
        raise ArtifactError(f"{str(path)!r}: {err}") from None
    except Exception as err:  # noqa: BLE001 - any unreadable file is bad input
        raise ArtifactError(
            f"{str(path)!r} is not a readable SB3 model.zip ({type(err).__name__})"
        ) from None
    module = getattr(data.get("policy_class"), "__module__", "")
    if layout.name == "sac":
        return "tqc" if module.startswith("sb3_contrib.tqc") else "sac"
    if layout.name == "td3":  # DDPG is TD3 with one actor update per critic update, no noise
        ddpg = data.get("policy_delay") == 1 and data.get("target_noise_clip") == 0.0
        return "ddpg" if ddpg else "td3"
    if layout.name == "ppo":
        return "ppo" if "n_epochs" in data else "a2c"
    return layout.name


def load_sb3_model(path: str | Path, algo: str | None = None):
    """Load an SB3 ``model.zip`` on the CPU with the class of its algorithm (``algo``, or
    :func:`saved_algo`), without allocating an off-policy replay buffer."""
    from nnc4rl.compress.algos import algo_by_name

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{str(path)!r} is not a readable SB3 model.zip (no such file)")
    entry = algo_by_name(algo or saved_algo(path))
    custom = {} if entry.on_policy else {"buffer_size": 1}
    try:
        return entry.load_class().load(path, device="cpu", custom_objects=custom)
    except ImportError as err:
        raise ArtifactError(str(err)) from None
    except Exception as err:  # noqa: BLE001 - a file of another algorithm is bad input
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ArtifactError(f"{str(path)!r} does not load as {entry.class_name}: {msg}") from None


RUN_INFO = ("env", "seed", "arch", "algo")  # summary.json fields kept (the calibration needs them)


def artifact_from_path(
    source: str | Path, bits: int | None = None, trust_pickle: bool = False
) -> Artifact:
    """The artifact of a run folder, a ``model.zip`` or an artifact ``.npz``.

    A run folder holds ``model.zip`` (a training run) or ``policy.npz`` (a run-store folder,
    ``data/runs/<profile>/<id>/``); its ``summary.json`` supplies ``bits`` (and an error if it
    says unquantized) and the env id and seed recorded in the artifact's ``info``.

    :param trust_pickle: load a ``model.zip`` that this user's ``nnc4rl train`` did not sign
        (:mod:`nnc4rl.core.trust`); unpickling it runs any code it holds. Without it such a
        file is refused, unread.
    :raises ArtifactError: one line (a missing or unreadable file, an unsigned model.zip, ...).
    """
    from nnc4rl.core.trust import file_is_signed, signature_file
    from nnc4rl.export.codec import load_artifact

    source, run_info = Path(source), {}
    if source.is_dir():
        folder = source
        summary_path = folder / "summary.json"
        if summary_path.exists():
            try:
                summary = json.loads(summary_path.read_text())
            except (OSError, ValueError) as err:  # UnicodeDecodeError is a ValueError
                raise ArtifactError(
                    f"{str(summary_path)!r} is unreadable ({type(err).__name__}): restore it, "
                    "or export the folder's model.zip / policy.npz directly"
                ) from None
            if not isinstance(summary, dict):
                raise ArtifactError(f"{str(summary_path)!r} is not a JSON object")
            if not summary.get("quantized", True):
                raise ArtifactError(
                    f"run {str(folder)!r} was not quantized (bits=32): only models "
                    "trained with --quantize can be exported"
                )
            bits = bits or summary.get("bits")
            run_info = {k: summary[k] for k in RUN_INFO if summary.get(k) is not None}
        source = folder / "model.zip"
        if not source.exists() and (folder / "policy.npz").exists():
            source = folder / "policy.npz"
    if not source.exists():
        raise ArtifactError(f"{str(source)!r} does not exist: give a run folder, model.zip or .npz")
    if source.suffix == ".npz":
        art = load_artifact(source)
        for k, v in run_info.items():
            art.info.setdefault(k, v)
        return art
    if not trust_pickle and not file_is_signed(source):
        raise ArtifactError(
            f"{str(source)!r} has no valid signature ({signature_file(source).name}): it was not "
            "written by this user's nnc4rl train, and loading a model.zip runs any code it holds; "
            "pass --trust-pickle only for a file you trust"
        )
    model = load_sb3_model(source, run_info.get("algo"))
    # the file name is provenance that reaches generated code: only safe characters are kept
    return artifact_from_sb3(model, bits, info={"source": safe_text(source.name)} | run_info)

"""Layer 2, deployment: a compressed policy as an npz artifact, ONNX (QDQ / integer) and C99.

Owns: the artifact's data model, tracing from a trained SB3 model and the ``.npz`` codec
(:mod:`.model`, :mod:`.trace`, :mod:`.codec`, format in ``FORMAT.md``), its numpy inference in
fp32 and full-integer arithmetic (:mod:`.inference`, :mod:`.integer`), dead-unit removal
(:mod:`.dead_units`), the ONNX and C exporters (:mod:`.onnx_export`, :mod:`.c_export`, its
integer kernels :mod:`.c_kernels`, :mod:`.c_build`), the Cortex-M4 build under QEMU
(:mod:`.mcu`), playing a policy on a run's paired evaluation episodes (:mod:`.closed_loop`) and
the benchmark helpers (:mod:`.bench`, :mod:`.verify`).

May import: :mod:`nnc4rl.core`, :mod:`nnc4rl.compress`.

Typical use::

    from nnc4rl.export import artifact_from_path, calibrate_held_out, save_artifact

    art = artifact_from_path("runs/hopper")          # run folder, model.zip or .npz
    save_artifact(art, "hopper.npz")                  # format: nnc4rl/export/FORMAT.md
    policy = load_policy("hopper.npz")                # .predict(obs) like an SB3 model
    art_int = calibrate_held_out(art)            # full-integer path (int8 activations)
    int_policy = load_policy(art_int, integer=True)
"""

from __future__ import annotations

from pathlib import Path

from nnc4rl.export.closed_loop import calibrate_held_out, evaluation_seeds, play
from nnc4rl.export.codec import load_artifact, save_artifact
from nnc4rl.export.inference import ArtifactPolicy, Policy
from nnc4rl.export.integer import IntegerPolicy, calibrate
from nnc4rl.export.model import Artifact, ArtifactError, Layer
from nnc4rl.export.trace import (
    artifact_from_path,
    artifact_from_sb3,
    load_sb3_model,
    weights_into_sb3,
)


def load_policy(source: str | Path | Artifact, integer: bool = False) -> Policy:
    """The numpy policy of an artifact (``.npz`` path or :class:`Artifact`):
    ``predict(obs) -> (actions, None)``.

    :param integer: the full-integer path (the artifact must be calibrated), else the
        weight-only fp32-activation path (the trained network's arithmetic).
    """
    art = source if isinstance(source, Artifact) else load_artifact(source)
    return IntegerPolicy(art) if integer else ArtifactPolicy(art)


__all__ = [
    "Artifact",
    "ArtifactError",
    "ArtifactPolicy",
    "IntegerPolicy",
    "Layer",
    "Policy",
    "artifact_from_path",
    "artifact_from_sb3",
    "calibrate",
    "calibrate_held_out",
    "evaluation_seeds",
    "load_artifact",
    "load_policy",
    "load_sb3_model",
    "play",
    "save_artifact",
    "weights_into_sb3",
]

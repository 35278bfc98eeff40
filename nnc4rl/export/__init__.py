"""Deployment export of compressed policies: npz artifact, ONNX (QDQ) and standalone C99.

Typical use::

    from nnc4rl.export import artifact_from_path, save_artifact, load_policy

    art = artifact_from_path("runs/hopper")          # run folder, model.zip or .npz
    save_artifact(art, "hopper.npz")                  # format: nnc4rl/export/FORMAT.md
    policy = load_policy("hopper.npz")                # .predict(obs) like an SB3 model
"""

from __future__ import annotations

from pathlib import Path

from nnc4rl.export.artifact import (
    Artifact,
    ArtifactError,
    Layer,
    artifact_from_path,
    artifact_from_sb3,
    load_artifact,
    load_sb3_model,
    save_artifact,
)
from nnc4rl.export.inference import ArtifactPolicy, Policy


def load_policy(path: str | Path) -> ArtifactPolicy:
    """The numpy policy of an artifact ``.npz`` (``predict(obs) -> (actions, None)``)."""
    return ArtifactPolicy(load_artifact(path))


__all__ = [
    "Artifact",
    "ArtifactError",
    "ArtifactPolicy",
    "Layer",
    "Policy",
    "artifact_from_path",
    "artifact_from_sb3",
    "load_artifact",
    "load_policy",
    "load_sb3_model",
    "save_artifact",
]

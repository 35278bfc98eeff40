"""The deployment artifact: a compressed SAC actor or DQN Q-network as one versioned ``.npz``.

The implementation follows the sections of ``nnc4rl/export/FORMAT.md``: the data model and graph
checks (:mod:`nnc4rl.export.model`), building from a trained SB3 model
(:mod:`nnc4rl.export.trace`) and the ``.npz`` codec (:mod:`nnc4rl.export.codec`). This module
gathers their public names.
"""

from __future__ import annotations

from nnc4rl.export.codec import encode, load_artifact, pack_codes, save_artifact, unpack_codes
from nnc4rl.export.model import (
    FORMAT_NAME,
    FORMAT_VERSION,
    OPS,
    Artifact,
    ArtifactError,
    Layer,
    infer_shapes,
)
from nnc4rl.export.trace import (
    GRID_TOLERANCE,
    artifact_from_path,
    artifact_from_sb3,
    grid_codes,
    load_sb3_model,
)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "GRID_TOLERANCE",
    "OPS",
    "Artifact",
    "ArtifactError",
    "Layer",
    "artifact_from_path",
    "artifact_from_sb3",
    "encode",
    "grid_codes",
    "infer_shapes",
    "load_artifact",
    "load_sb3_model",
    "pack_codes",
    "save_artifact",
    "unpack_codes",
]

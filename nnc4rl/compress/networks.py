"""IMPALA-style ResNet features extractor for SB3's DQN ``CnnPolicy``.

Two presets (``ARCH_PRESETS``):

* ``impala-authors`` - the paper authors' variant: stages of 32, 64, 64 channels; each stage is a
  3x3 conv *without* padding, a 3x3/2 max-pool without padding and two residual blocks
  (relu-conv3x3-relu-conv3x3 + identity); relu, flatten (64 x 7 x 7 = 3136 for 84x84), fc 512.
* ``impala`` - the original IMPALA network (Espeholt et al. 2018): 16, 32, 32 channels, "same"
  padding everywhere (the max-pool too), fc 256.
"""

from __future__ import annotations

import sys

import cloudpickle
import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

ARCH_PRESETS: dict[str, dict] = {
    "impala": {"channels": (16, 32, 32), "same_padding": True, "features_dim": 256},
    "impala-authors": {"channels": (32, 64, 64), "same_padding": False, "features_dim": 512},
}


class ResidualBlock(nn.Module):
    """``x + conv(relu(conv(relu(x))))`` with 3x3 convs that keep the spatial size."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(torch.relu(self.conv0(torch.relu(x))))


class ImpalaStage(nn.Module):
    """conv3x3 -> maxpool 3/2 -> two residual blocks."""

    def __init__(self, in_channels: int, out_channels: int, same_padding: bool):
        super().__init__()
        pad = 1 if same_padding else 0
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=pad)
        self.pool = nn.MaxPool2d(3, stride=2, padding=pad)
        self.res0 = ResidualBlock(out_channels)
        self.res1 = ResidualBlock(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res1(self.res0(self.pool(self.conv(x))))


class ImpalaCNN(BaseFeaturesExtractor):
    """IMPALA-style ResNet: stages of :class:`ImpalaStage`, relu, flatten, fc ``features_dim``, relu.

    :param observation_space: image space, channels first ``(C, H, W)`` (SB3 transposes for us).
    :param channels: output channels of each stage.
    :param same_padding: pad the stage convs and pools ("same", the original IMPALA) or not
        (the paper authors' variant).
    :param features_dim: width of the fully connected layer.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Box,
        channels: tuple[int, ...] = (16, 32, 32),
        same_padding: bool = True,
        features_dim: int = 256,
    ):
        super().__init__(observation_space, features_dim)
        stages, c_in = [], observation_space.shape[0]
        for c_out in channels:
            stages.append(ImpalaStage(c_in, c_out, same_padding))
            c_in = c_out
        self.cnn = nn.Sequential(*stages, nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            n_flatten = self.cnn(torch.zeros(1, *observation_space.shape)).shape[1]
        self.linear = nn.Sequential(nn.Linear(n_flatten, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """``(batch, C, H, W)`` floats in [0, 1] -> ``(batch, features_dim)``."""
        return self.linear(self.cnn(observations))


# Pickle these classes by value inside SB3's model.zip (SB3 cloudpickles `policy_kwargs`), so a
# saved ResNet DQN loads with plain `DQN.load` even where nnc4rl is not installed.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

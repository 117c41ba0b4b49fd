"""Min/max normalisation as torch ops, so it folds into an exported ONNX graph.

The formulas are those of dppo_robot.model.normalization.Normalization (numpy).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dppo_robot.model.normalization import Normalization


class NormalizationModule(nn.Module):
    """The same formulas as torch ops, so they fold into an exported ONNX graph."""

    def __init__(self, norm: Normalization) -> None:
        super().__init__()
        self.register_buffer("obs_min", torch.from_numpy(norm.obs_min.copy()))
        self.register_buffer("obs_scale", torch.from_numpy(norm.obs_max - norm.obs_min + np.float32(norm.obs_eps)))
        self.register_buffer("action_min", torch.from_numpy(norm.action_min.copy()))
        self.register_buffer("action_range", torch.from_numpy(norm.action_max - norm.action_min))
        self.obs_clip = norm.obs_clip

    def normalize_obs(self, obs: torch.Tensor) -> torch.Tensor:
        n = 2.0 * (obs - self.obs_min) / self.obs_scale - 1.0
        if self.obs_clip is not None:
            n = n.clamp(-self.obs_clip, self.obs_clip)
        return n

    def denormalize_action(self, action_n: torch.Tensor) -> torch.Tensor:
        return (action_n + 1.0) / 2.0 * self.action_range + self.action_min

"""State value critic V(s) used by PPO: sees only the (normalised) observation history.

Shapes: cond["state"] [B, To, Do] -> value [B, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dppo_robot.model.mlp import make_mlp


class CriticObs(nn.Module):
    """MLP or ResidualMLP from the flattened observation history to a scalar value."""

    def __init__(
        self,
        cond_dim: int,
        mlp_dims: Sequence[int] = (256, 256, 256),
        activation_type: str = "Mish",
        use_layernorm: bool = False,
        residual_style: bool = False,
    ) -> None:
        super().__init__()
        self.Q1 = make_mlp(
            [cond_dim, *mlp_dims, 1], residual_style, activation_type=activation_type, use_layernorm=use_layernorm
        )

    def forward(self, cond: dict) -> torch.Tensor:
        state = cond["state"]
        return self.Q1(state.reshape(state.shape[0], -1))

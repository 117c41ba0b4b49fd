"""MLP denoiser eps_theta(x_k, k, s) for state-based diffusion policies.

Shapes: x [B, Tp, Da], t [B], cond["state"] [B, To, Do] -> eps [B, Tp, Da].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dppo_robot.model.mlp import MLP, make_mlp
from dppo_robot.model.time_embedding import time_mlp


class DiffusionMLP(nn.Module):
    """Input concat[x_flat, t_emb, obs_flat (optionally through cond_mlp)] -> MLP -> Tp*Da."""

    def __init__(
        self,
        action_dim: int,
        horizon_steps: int,
        cond_dim: int,
        time_dim: int = 16,
        mlp_dims: Sequence[int] = (256, 256),
        cond_mlp_dims: Sequence[int] | None = None,
        activation_type: str = "Mish",
        out_activation_type: str = "Identity",
        use_layernorm: bool = False,
        residual_style: bool = False,
    ) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.horizon_steps = horizon_steps
        self.time_dim = time_dim
        self.time_embedding = time_mlp(time_dim, 2)
        cond_out = cond_dim
        if cond_mlp_dims:
            self.cond_mlp = MLP([cond_dim, *cond_mlp_dims], activation_type=activation_type)
            cond_out = cond_mlp_dims[-1]
        in_dim = time_dim + action_dim * horizon_steps + cond_out
        self.mlp_mean = make_mlp(
            [in_dim, *mlp_dims, action_dim * horizon_steps],
            residual_style,
            activation_type=activation_type,
            out_activation_type=out_activation_type,
            use_layernorm=use_layernorm,
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        b = x.shape[0]
        state = cond["state"].reshape(b, -1)
        if hasattr(self, "cond_mlp"):
            state = self.cond_mlp(state)
        emb = self.time_embedding(t.reshape(b))
        out = self.mlp_mean(torch.cat([x.reshape(b, -1), emb, state], dim=-1))
        return out.reshape(b, self.horizon_steps, self.action_dim)

"""Gaussian MLP policy: the PPO baseline the paper compares DPPO with.

Shapes: cond["state"] [B, To, Do] -> mean [B, Tp, Da], std [B, Tp, Da].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from dppo_robot.model.mlp import MLP, make_mlp


class GaussianMLP(nn.Module):
    """Diagonal Gaussian over the action chunk; mean optionally squashed by tanh.

    With fixed_std the std is constant; with learn_fixed_std it is a learned per-dimension
    parameter initialised to fixed_std; otherwise a second head predicts log-variance, mapped
    into [log std_min^2, log std_max^2].
    """

    def __init__(
        self,
        action_dim: int,
        horizon_steps: int,
        cond_dim: int,
        mlp_dims: Sequence[int] = (256, 256, 256),
        activation_type: str = "Mish",
        tanh_output: bool = True,
        residual_style: bool = False,
        use_layernorm: bool = False,
        fixed_std: float | None = None,
        learn_fixed_std: bool = False,
        std_min: float = 0.01,
        std_max: float = 1.0,
    ) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.horizon_steps = horizon_steps
        self.tanh_output = tanh_output
        self.fixed_std = fixed_std
        self.learn_fixed_std = learn_fixed_std
        out_dim = action_dim * horizon_steps
        if learn_fixed_std and fixed_std is None:
            raise ValueError("learn_fixed_std needs fixed_std as its initial value")
        if fixed_std is None:
            self.mlp_base = make_mlp(
                [cond_dim, *mlp_dims],
                residual_style,
                activation_type=activation_type,
                out_activation_type=activation_type,
                use_layernorm=use_layernorm,
                use_layernorm_final=use_layernorm,
            )
            self.mlp_mean = MLP([mlp_dims[-1], out_dim])
            self.mlp_logvar = MLP([mlp_dims[-1], out_dim])
        else:
            self.mlp_mean = make_mlp(
                [cond_dim, *mlp_dims, out_dim],
                residual_style,
                activation_type=activation_type,
                use_layernorm=use_layernorm,
            )
            if learn_fixed_std:
                self.logvar = nn.Parameter(torch.full((action_dim,), math.log(fixed_std**2)))
        self.register_buffer("logvar_min", torch.tensor(math.log(std_min**2)))
        self.register_buffer("logvar_max", torch.tensor(math.log(std_max**2)))

    def forward(self, cond: dict) -> tuple[torch.Tensor, torch.Tensor]:
        b = cond["state"].shape[0]
        h = cond["state"].reshape(b, -1)
        if hasattr(self, "mlp_base"):
            h = self.mlp_base(h)
        mean = self.mlp_mean(h)
        if self.tanh_output:
            mean = torch.tanh(mean)
        if hasattr(self, "mlp_logvar"):
            lv = torch.tanh(self.mlp_logvar(h))
            lv = self.logvar_min + 0.5 * (self.logvar_max - self.logvar_min) * (lv + 1)
            std = torch.exp(0.5 * lv)
        elif self.learn_fixed_std:
            lv = torch.clamp(self.logvar, self.logvar_min, self.logvar_max)
            std = torch.exp(0.5 * lv).repeat(self.horizon_steps).expand(b, -1)
        else:
            std = torch.full_like(mean, float(self.fixed_std))
        shape = (b, self.horizon_steps, self.action_dim)
        return mean.reshape(shape), std.reshape(shape)

    def log_prob(self, cond: dict, actions: torch.Tensor) -> torch.Tensor:
        """log N(actions; mean, std) per element [B, Tp, Da]."""
        mean, std = self(cond)
        return torch.distributions.Normal(mean, std).log_prob(actions)

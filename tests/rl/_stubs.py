"""Stand-ins for a policy and a critic whose outputs are chosen by the test, for hand-computed losses."""

from __future__ import annotations

import torch
from torch import nn


class StubDiffusion(nn.Module):
    """step_log_probs returns the parameter `theta` [B, Tp, Da] whatever the chain."""

    use_ddim = False
    eta = 1.0

    def __init__(self, theta: torch.Tensor, ft_denoising_steps: int) -> None:
        super().__init__()
        self.theta = nn.Parameter(theta.clone())
        self.ft_denoising_steps = ft_denoising_steps

    def step_log_probs(self, cond, x_prev, x_next, ft_index, use_base_policy=False):
        return self.theta + 0.0 * x_next


class StubGaussian(nn.Module):
    """forward returns the parameters (mean [B, Tp, Da], std [B, Tp, Da])."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.mean = nn.Parameter(mean.clone())
        self.std = nn.Parameter(std.clone())

    def forward(self, cond):
        return self.mean, self.std


class StubCritic(nn.Module):
    """V(s) = the parameter `v` [B]."""

    def __init__(self, v: torch.Tensor) -> None:
        super().__init__()
        self.v = nn.Parameter(v.clone())

    def forward(self, cond):
        return self.v.view(-1, 1)

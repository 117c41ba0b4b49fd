"""Sinusoidal embedding of the denoising timestep."""

from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalPosEmb(nn.Module):
    """t [B] -> [B, dim]: sin and cos of t at geometrically spaced frequencies."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim < 4 or dim % 2:
            raise ValueError(f"time embedding dim must be even and >= 4, got {dim}")
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        scale = math.log(10000) / (half - 1)
        freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * -scale)
        arg = t.to(torch.float32)[:, None] * freqs[None, :]
        return torch.cat((arg.sin(), arg.cos()), dim=-1)


def time_mlp(dim: int, hidden_mult: int) -> nn.Sequential:
    """Sinusoidal embedding followed by Linear(d, m*d), Mish, Linear(m*d, d).

    Indices 1 and 3 hold the linear layers, as in the reference state dicts.
    """
    return nn.Sequential(
        SinusoidalPosEmb(dim),
        nn.Linear(dim, dim * hidden_mult),
        nn.Mish(),
        nn.Linear(dim * hidden_mult, dim),
    )

"""Temporal 1D U-Net denoiser with FiLM conditioning (Diffusion Policy style).

Shapes: x [B, Tp, Da], t [B], cond["state"] [B, To, Do] -> eps [B, Tp, Da].
Tp must be divisible by 2 ** (len(dim_mults) - 1).
Module names match the reference implementation's state dicts.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

from dppo_robot.model.mlp import ResidualMLP, activation
from dppo_robot.model.time_embedding import time_mlp


class Conv1dBlock(nn.Module):
    """Conv1d -> GroupNorm (optional) -> activation, length preserving."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, n_groups: int | None, act: str, eps: float) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2),
            nn.Identity(),
            nn.GroupNorm(n_groups, c_out, eps=eps) if n_groups else nn.Identity(),
            nn.Identity(),
            activation(act),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class ResidualBlock1D(nn.Module):
    """Two conv blocks with FiLM (scale and bias, or bias only) from the global condition."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        cond_dim: int,
        kernel_size: int,
        n_groups: int | None,
        cond_predict_scale: bool,
        larger_encoder: bool,
        act: str,
        eps: float,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                Conv1dBlock(c_in, c_out, kernel_size, n_groups, act, eps),
                Conv1dBlock(c_out, c_out, kernel_size, n_groups, act, eps),
            ]
        )
        self.out_channels = c_out
        self.cond_predict_scale = cond_predict_scale
        cc = c_out * 2 if cond_predict_scale else c_out
        if larger_encoder:
            self.cond_encoder = nn.Sequential(
                nn.Linear(cond_dim, cc), activation(act), nn.Linear(cc, cc), activation(act), nn.Linear(cc, cc)
            )
        else:
            self.cond_encoder = nn.Sequential(activation(act), nn.Linear(cond_dim, cc))
        self.residual_conv = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        out = self.blocks[0](x)
        embed = self.cond_encoder(cond).unsqueeze(-1)
        if self.cond_predict_scale:
            embed = embed.reshape(embed.shape[0], 2, self.out_channels, 1)
            out = embed[:, 0] * out + embed[:, 1]
        else:
            out = out + embed
        out = self.blocks[1](out)
        return out + self.residual_conv(x)


class Downsample1d(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, 3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample1d(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose1d(dim, dim, 4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Unet1D(nn.Module):
    """U-Net over the chunk axis; the time embedding and obs form the FiLM condition."""

    def __init__(
        self,
        action_dim: int,
        cond_dim: int,
        diffusion_step_embed_dim: int = 32,
        dim: int = 64,
        dim_mults: Sequence[int] = (1, 2, 4),
        smaller_encoder: bool = False,
        cond_mlp_dims: Sequence[int] | None = None,
        kernel_size: int = 5,
        n_groups: int | None = 8,
        activation_type: str = "Mish",
        cond_predict_scale: bool = True,
        groupnorm_eps: float = 1e-5,
        horizon_steps: int | None = None,
    ) -> None:
        super().__init__()
        self.dim_mults = tuple(dim_mults)
        if horizon_steps is not None and horizon_steps % (2 ** (len(dim_mults) - 1)):
            raise ValueError(
                f"Unet1D: horizon_steps={horizon_steps} must be divisible by 2**(len(dim_mults)-1)"
                f"={2 ** (len(dim_mults) - 1)}"
            )
        dims = [action_dim, *(dim * m for m in dim_mults)]
        in_out = list(itertools.pairwise(dims))
        dsed = diffusion_step_embed_dim
        self.time_mlp = time_mlp(dsed, 4)
        if cond_mlp_dims:
            self.cond_mlp = ResidualMLP([cond_dim, *cond_mlp_dims], activation_type=activation_type)
            cond_block_dim = dsed + cond_mlp_dims[-1]
        else:
            cond_block_dim = dsed + cond_dim
        larger = not cond_mlp_dims and not smaller_encoder

        def block(ci: int, co: int) -> ResidualBlock1D:
            return ResidualBlock1D(
                ci,
                co,
                cond_block_dim,
                kernel_size,
                n_groups,
                cond_predict_scale,
                larger,
                activation_type,
                groupnorm_eps,
            )

        self.mid_modules = nn.ModuleList([block(dims[-1], dims[-1]), block(dims[-1], dims[-1])])
        self.down_modules = nn.ModuleList()
        for i, (ci, co) in enumerate(in_out):
            last = i >= len(in_out) - 1
            self.down_modules.append(
                nn.ModuleList([block(ci, co), block(co, co), nn.Identity() if last else Downsample1d(co)])
            )
        self.up_modules = nn.ModuleList()
        for i, (ci, co) in enumerate(reversed(in_out[1:])):
            last = i >= len(in_out) - 1
            self.up_modules.append(
                nn.ModuleList([block(co * 2, ci), block(ci, ci), nn.Identity() if last else Upsample1d(ci)])
            )
        self.final_conv = nn.Sequential(
            Conv1dBlock(dim, dim, kernel_size, n_groups, activation_type, groupnorm_eps),
            nn.Conv1d(dim, action_dim, 1),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: dict) -> torch.Tensor:
        b = x.shape[0]
        h = x.transpose(1, 2)  # [B, Da, Tp]
        state = cond["state"].reshape(b, -1)
        if hasattr(self, "cond_mlp"):
            state = self.cond_mlp(state)
        g = torch.cat([self.time_mlp(t.reshape(b)), state], dim=-1)
        skips = []
        for res1, res2, down in self.down_modules:
            h = res2(res1(h, g), g)
            skips.append(h)
            h = down(h)
        for mid in self.mid_modules:
            h = mid(h, g)
        for res1, res2, up in self.up_modules:
            h = torch.cat((h, skips.pop()), dim=1)
            h = up(res2(res1(h, g), g))
        return self.final_conv(h).transpose(1, 2)

"""Noise schedules of the diffusion chain: the cosine beta schedule and DDIM step selection.

Computed in float32 exactly as the reference implementation does, so imported policies see
bit-identical coefficients.
"""

from __future__ import annotations

import numpy as np
import torch


def cosine_beta_schedule(num_steps: int, s: float = 0.008) -> torch.Tensor:
    """Betas [K] of the cosine schedule (Nichol & Dhariwal), clipped to [0, 0.999].

    Mirrors the reference: K + 1 points on linspace(0, K + 1, K + 1).
    """
    if num_steps < 1:
        raise ValueError(f"denoising_steps must be >= 1, got {num_steps}")
    steps = num_steps + 1
    x = np.linspace(0, steps, steps)
    alphas_cumprod = np.cos(((x / steps) + s) / (1 + s) * np.pi * 0.5) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = 1 - (alphas_cumprod[1:] / alphas_cumprod[:-1])
    return torch.tensor(np.clip(betas, 0.0, 0.999), dtype=torch.float32)


def ddim_timesteps(num_steps: int, ddim_steps: int) -> list[int]:
    """DDIM timesteps in sampling order ("uniform", leading spacing).

    K=100, ddim_steps=5 gives [80, 60, 40, 20, 0].
    """
    if not 1 <= ddim_steps <= num_steps:
        raise ValueError(f"ddim_steps must be in [1, denoising_steps={num_steps}], got {ddim_steps}")
    ratio = num_steps // ddim_steps
    return [i * ratio for i in range(ddim_steps)][::-1]


class NoiseSchedule(torch.nn.Module):
    """All per-step coefficients of the DDPM and DDIM chains, as float32 buffers.

    DDPM buffers are indexed by the timestep t in [0, K). DDIM buffers are indexed by the
    sampling index i in [0, S) (i = 0 is the first, noisiest step).
    """

    def __init__(self, num_steps: int, ddim_steps: int | None = None) -> None:
        super().__init__()
        self.num_steps = num_steps
        self.ddim_steps = ddim_steps
        betas = cosine_beta_schedule(num_steps)
        alphas = 1.0 - betas
        ac = torch.cumprod(alphas, dim=0)
        ac_prev = torch.cat([torch.ones(1), ac[:-1]])
        self.register_buffer("betas", betas, persistent=False)
        self.register_buffer("alphas_cumprod", ac, persistent=False)
        self.register_buffer("sqrt_alphas_cumprod", torch.sqrt(ac), persistent=False)
        self.register_buffer("sqrt_one_minus_alphas_cumprod", torch.sqrt(1.0 - ac), persistent=False)
        self.register_buffer("sqrt_recip_alphas_cumprod", torch.sqrt(1.0 / ac), persistent=False)
        self.register_buffer("sqrt_recipm1_alphas_cumprod", torch.sqrt(1.0 / ac - 1), persistent=False)
        var = betas * (1.0 - ac_prev) / (1.0 - ac)
        self.register_buffer("ddpm_logvar_clipped", torch.log(torch.clamp(var, min=1e-20)), persistent=False)
        self.register_buffer("ddpm_mu_coef1", betas * torch.sqrt(ac_prev) / (1.0 - ac), persistent=False)
        self.register_buffer("ddpm_mu_coef2", (1.0 - ac_prev) * torch.sqrt(alphas) / (1.0 - ac), persistent=False)
        if ddim_steps is not None:
            t = torch.tensor(ddim_timesteps(num_steps, ddim_steps), dtype=torch.long)
            t_leading = t.flip(0)  # [0, r, 2r, ...]
            a = ac[t_leading].clone()
            a_prev = torch.cat([torch.ones(1), ac[t_leading[:-1]]])
            self.register_buffer("ddim_t", t, persistent=False)
            self.register_buffer("ddim_alphas", a.flip(0), persistent=False)
            self.register_buffer("ddim_alphas_prev", a_prev.flip(0), persistent=False)
            self.register_buffer("ddim_sqrt_one_minus_alphas", ((1.0 - a) ** 0.5).flip(0), persistent=False)

    @property
    def use_ddim(self) -> bool:
        return self.ddim_steps is not None

    @property
    def n_sampling_steps(self) -> int:
        """S: the number of denoising steps one sample runs."""
        return self.ddim_steps if self.ddim_steps is not None else self.num_steps

    def timesteps(self) -> list[int]:
        """Timestep t of each sampling index i, in sampling order."""
        if self.ddim_steps is not None:
            return [int(v) for v in self.ddim_t]
        return list(range(self.num_steps - 1, -1, -1))

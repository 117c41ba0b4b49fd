"""The torch sampler in environment units: the reference the exported graph must reproduce.

noise [B, S, Tp, Da] follows the bundle layout: noise[:, 0] is x_T, and for a DDPM chain
noise[:, 1 + i] is the noise of sampling step i.
"""

from __future__ import annotations

import numpy as np
import torch

from dppo_robot.model.diffusion import DiffusionPolicy
from dppo_robot.model.normalization import Normalization


def noise_steps(policy: DiffusionPolicy) -> int:
    """S of the noise input: 1 for deterministic DDIM, 1 + K for a DDPM chain."""
    return 1 if policy.use_ddim else 1 + policy.n_steps


@torch.no_grad()
def sample_env_units(
    policy: DiffusionPolicy,
    norm: Normalization,
    obs: np.ndarray,
    noise: np.ndarray,
    images: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """obs [B, To, Do] env units, noise [B, S, Tp, Da] -> actions [B, Tp, Da] env units (eval mode)."""
    cond: dict = {"state": torch.from_numpy(norm.normalize_obs(obs))}
    if images:
        cond["images"] = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in images.items()}
    z = torch.from_numpy(np.asarray(noise, np.float32))
    step_noise = None if policy.use_ddim else z[:, 1:]
    out = policy.sample(cond, "eval", x_T=z[:, 0], step_noise=step_noise).actions
    return norm.denormalize_action(out.numpy())

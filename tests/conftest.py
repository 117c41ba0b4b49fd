"""Shared builders for small policies, specs and bundles (real torch, real ONNX, real files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dppo_robot.bundle.export import write_bundle
from dppo_robot.bundle.manifest import Provenance
from dppo_robot.io_spec import CameraSpec, IOSpec, Slice
from dppo_robot.model.diffusion import DiffusionPolicy
from dppo_robot.model.normalization import Normalization
from dppo_robot.model.policy_config import DenoiserConfig, DiffusionConfig, PolicyConfig
from dppo_robot.model.policy_factory import build_diffusion_policy

# Small versions of the reference architectures (same structure, fewer units).
SMALL_DENOISERS = {
    "mlp": DenoiserConfig(kind="mlp", mlp_dims=[64, 64, 64], time_dim=8, cond_mlp_dims=[32, 16]),
    "residual_ln": DenoiserConfig(
        kind="mlp", mlp_dims=[64, 64, 64], time_dim=8, residual_style=True, use_layernorm=True
    ),
    "unet1d": DenoiserConfig(kind="unet1d", unet_dim=16, dim_mults=[1, 2], n_groups=8, diffusion_step_embed_dim=8),
    "vit": DenoiserConfig(
        kind="vit_mlp",
        mlp_dims=[64, 64, 64],
        time_dim=8,
        residual_style=True,
        embed_dim=32,
        spatial_emb=16,
        vit_heads=2,
        patch_size=8,
    ),
}


def small_spec(obs_dim: int = 5, action_dim: int = 3, camera: bool = False) -> IOSpec:
    obs = [Slice("ee_pos", 3, "m", "base"), Slice("gripper", obs_dim - 3, "m")]
    act = [Slice("ee_delta_pos", 2, "m", "base"), Slice("gripper", action_dim - 2, "normalized")]
    cams = [CameraSpec("wrist", 32, 32)] if camera else []
    return IOSpec(obs, act, 10.0, cams)


def small_norm(
    obs_dim: int = 5, action_dim: int = 3, obs_eps: float = 0.0, obs_clip: float | None = 5.0
) -> Normalization:
    rng = np.random.default_rng(7)
    omin = rng.uniform(-2, 0, obs_dim)
    amin = rng.uniform(-1, 0, action_dim)
    return Normalization(
        omin, omin + rng.uniform(0.5, 3, obs_dim), amin, amin + rng.uniform(0.2, 2, action_dim), obs_eps, obs_clip
    )


def small_config(kind: str = "mlp", ddim: bool = True, ft: int = 0, cond_steps: int = 2) -> PolicyConfig:
    horizon = 8 if kind == "unet1d" else 4
    return PolicyConfig(
        obs_dim=5,
        action_dim=3,
        cond_steps=cond_steps,
        horizon_steps=horizon,
        act_steps=horizon // 2,
        denoiser=SMALL_DENOISERS[kind],
        diffusion=DiffusionConfig(denoising_steps=10, ddim_steps=5 if ddim else None, ft_denoising_steps=ft),
    )


def randomize(policy: DiffusionPolicy, seed: int = 0) -> DiffusionPolicy:
    """Re-draw every parameter so the network is far from its init (and actor_ft differs from actor)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in policy.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return policy.eval()


def build_small(kind: str = "mlp", ddim: bool = True, ft: int = 0, seed: int = 0):
    cfg = small_config(kind, ddim, ft)
    spec = small_spec(camera=kind == "vit")
    policy = randomize(build_diffusion_policy(cfg, spec), seed)
    return policy, cfg, spec, small_norm()


def export_small(tmp: Path, kind: str = "mlp", ddim: bool = True, ft: int = 0, name: str = "test_policy"):
    policy, cfg, spec, norm = build_small(kind, ddim, ft)
    out = tmp / name
    manifest = write_bundle(policy, cfg, spec, norm, out, name, Provenance("fresh", "dppo_robot", None))
    return out, manifest, policy, cfg, spec, norm


@pytest.fixture(scope="session")
def mlp_bundle(tmp_path_factory) -> Path:
    """A small DDIM MLP bundle, shared read-only by runtime tests (copy it before tampering)."""
    out, *_ = export_small(tmp_path_factory.mktemp("bundles"), "mlp")
    return out

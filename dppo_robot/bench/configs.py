"""The reference policy configurations the inference benchmark times.

Each is a PolicyConfig + IOSpec + synthetic Normalization taken from the reference DPPO
fine-tuning configs (irom-lab/dppo, cfg/...):

- square_mlp: robomimic square, state MLP (cfg/robomimic/finetune/square/ft_ppo_diffusion_mlp.yaml):
  Do 23, Da 7, To 1, Tp = Ta = 4, DDPM K = 20 with K' = 10 (actor serves the first 10 steps,
  actor_ft the last 10), DiffusionMLP [1024]x3 residual, time_dim 32, cond_mlp [512, 64].
  The evaluation path is the full 20-step DDPM chain with noise, so the noise input has S = 1 + K.
- one_leg_mlp: furniture one_leg_low, state MLP (cfg/furniture/finetune/one_leg_low/ft_ppo_diffusion_mlp.yaml):
  Do 58, Da 10, To 1, Tp = Ta = 8, K = 100 under DDIM-5, K' = 5 (actor_ft serves every step),
  DiffusionMLP [1024]x7 residual with LayerNorm, time_dim 32, cond_mlp [512, 64] (~6.6M params).
- one_leg_unet: furniture one_leg, Unet1D (cfg/furniture/finetune/one_leg_*/ft_ppo_diffusion_unet.yaml):
  Tp 16, Ta 8, dim 64, mults [1, 2, 4], kernel 5, GroupNorm 8 groups, step embedding 16,
  FiLM scale and bias, GroupNorm eps 1e-4, DDIM-5 with K' = 5.
- square_vit: robomimic square from pixels (cfg/robomimic/finetune/square/ft_ppo_diffusion_mlp_img.yaml):
  proprio Do 9, one 96x96 camera, ViT patch 8 / depth 1 / embed 128 / 4 heads, spatial_emb 128,
  MLP head [768]x3 residual, time_dim 32, no augmentation, DDIM 100 -> 5 with K' = 5.

Weights are random (seeded): latency does not depend on training. actor_ft is perturbed away
from actor so that a chain that picks the wrong network for a step shows up in the checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dppo_robot.io_spec import IOSpec
from dppo_robot.model.diffusion import DiffusionPolicy
from dppo_robot.model.normalization import Normalization
from dppo_robot.model.policy_config import DenoiserConfig, DiffusionConfig, PolicyConfig
from dppo_robot.model.policy_factory import build_diffusion_policy


@dataclass
class BenchConfig:
    """One benchmarked policy: its config, IO layout and (synthetic) normalisation."""

    name: str
    description: str
    policy: PolicyConfig
    spec: IOSpec
    norm: Normalization
    seed: int = 0

    def build(self) -> DiffusionPolicy:
        """The policy with seeded random weights, in eval mode."""
        self.policy.validate()
        self.policy.denoiser.validate()
        self.policy.diffusion.validate()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            policy = build_diffusion_policy(self.policy, self.spec)
            if policy.actor_ft is not None:
                g = torch.Generator().manual_seed(self.seed + 1)
                with torch.no_grad():
                    for p in policy.actor_ft.parameters():
                        p.add_(torch.randn(p.shape, generator=g) * 0.01)
        return policy.eval()


def synthetic_normalization(
    obs_dim: int, action_dim: int, seed: int, obs_eps: float = 0.0, obs_clip: float | None = None
) -> Normalization:
    """Random but plausible per-dimension ranges (obs half-widths 0.1..2, action 0.05..1)."""
    rng = np.random.default_rng(seed)
    oc, oh = rng.uniform(-1, 1, obs_dim), rng.uniform(0.1, 2.0, obs_dim)
    ac, ah = rng.uniform(-0.5, 0.5, action_dim), rng.uniform(0.05, 1.0, action_dim)
    return Normalization(oc - oh, oc + oh, ac - ah, ac + ah, obs_eps, obs_clip)


def _task_spec(task: str, **overrides) -> IOSpec:
    """The IO spec of the simulated task the configuration belongs to (slice names as deployed)."""
    import dppo_robot.envs  # noqa: F401  (registers the tasks; no simulator is loaded)
    from dppo_robot.envs.registry import default_task_config, task_io_spec

    return task_io_spec(default_task_config(task, **overrides))


def square_mlp() -> BenchConfig:
    cfg = PolicyConfig(
        obs_dim=23,
        action_dim=7,
        cond_steps=1,
        horizon_steps=4,
        act_steps=4,
        denoiser=DenoiserConfig(
            kind="mlp", mlp_dims=[1024, 1024, 1024], time_dim=32, cond_mlp_dims=[512, 64], residual_style=True
        ),
        diffusion=DiffusionConfig(
            denoising_steps=20,
            ddim_steps=None,
            ft_denoising_steps=10,
            randn_clip_value=3.0,
            min_sampling_denoising_std=0.1,
        ),
    )
    spec = _task_spec("square")
    return BenchConfig(
        "square_mlp",
        "robomimic square, state MLP [1024]x3, DDPM K=20 (K'=10: actor + actor_ft)",
        cfg,
        spec,
        synthetic_normalization(23, 7, seed=1, obs_eps=1e-6),
        seed=1,
    )


def one_leg_mlp() -> BenchConfig:
    cfg = PolicyConfig(
        obs_dim=58,
        action_dim=10,
        cond_steps=1,
        horizon_steps=8,
        act_steps=8,
        denoiser=DenoiserConfig(
            kind="mlp",
            mlp_dims=[1024] * 7,
            time_dim=32,
            cond_mlp_dims=[512, 64],
            residual_style=True,
            use_layernorm=True,
        ),
        diffusion=DiffusionConfig(
            denoising_steps=100,
            ddim_steps=5,
            ft_denoising_steps=5,
            randn_clip_value=3.0,
            min_sampling_denoising_std=0.04,
        ),
    )
    return BenchConfig(
        "one_leg_mlp",
        "furniture one_leg, state MLP [1024]x7 + LayerNorm, DDIM-5 (actor_ft)",
        cfg,
        _task_spec("one_leg"),
        synthetic_normalization(58, 10, seed=2, obs_clip=5.0),
        seed=2,
    )


def one_leg_unet() -> BenchConfig:
    cfg = PolicyConfig(
        obs_dim=58,
        action_dim=10,
        cond_steps=1,
        horizon_steps=16,
        act_steps=8,
        denoiser=DenoiserConfig(
            kind="unet1d",
            unet_dim=64,
            dim_mults=[1, 2, 4],
            kernel_size=5,
            n_groups=8,
            diffusion_step_embed_dim=16,
            cond_predict_scale=True,
            smaller_encoder=False,
            groupnorm_eps=1e-4,
        ),
        diffusion=DiffusionConfig(
            denoising_steps=100,
            ddim_steps=5,
            ft_denoising_steps=5,
            randn_clip_value=3.0,
            min_sampling_denoising_std=0.04,
        ),
    )
    return BenchConfig(
        "one_leg_unet",
        "furniture one_leg, Unet1D dim 64 [1,2,4], Tp 16, DDIM-5 (actor_ft)",
        cfg,
        _task_spec("one_leg"),
        synthetic_normalization(58, 10, seed=3, obs_clip=5.0),
        seed=3,
    )


def square_vit() -> BenchConfig:
    cfg = PolicyConfig(
        obs_dim=9,
        action_dim=7,
        cond_steps=1,
        horizon_steps=4,
        act_steps=4,
        denoiser=DenoiserConfig(
            kind="vit_mlp",
            mlp_dims=[768, 768, 768],
            time_dim=32,
            residual_style=True,
            img_cond_steps=1,
            patch_size=8,
            embed_dim=128,
            vit_depth=1,
            vit_heads=4,
            spatial_emb=128,
            augment=False,
        ),
        diffusion=DiffusionConfig(
            denoising_steps=100,
            ddim_steps=5,
            ft_denoising_steps=5,
            randn_clip_value=3.0,
            min_sampling_denoising_std=0.1,
        ),
    )
    spec = _task_spec("square", cameras=["agentview"], image_size=96)
    return BenchConfig(
        "square_vit",
        "robomimic square pixels, ViT (patch 8, depth 1, 128) + MLP [768]x3, 96x96, DDIM-5 (actor_ft)",
        cfg,
        spec,
        synthetic_normalization(9, 7, seed=4, obs_eps=1e-6),
        seed=4,
    )


BUILDERS = {
    "square_mlp": square_mlp,
    "one_leg_mlp": one_leg_mlp,
    "one_leg_unet": one_leg_unet,
    "square_vit": square_vit,
}
CONFIG_NAMES = tuple(BUILDERS)


def get_config(name: str) -> BenchConfig:
    if name not in BUILDERS:
        raise ValueError(f"unknown benchmark configuration {name!r}; known: {list(CONFIG_NAMES)}")
    return BUILDERS[name]()

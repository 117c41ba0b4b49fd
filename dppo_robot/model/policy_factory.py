"""Build policy, denoiser and critic modules from typed configs."""

from __future__ import annotations

from torch import nn

from dppo_robot.io_spec import IOSpec
from dppo_robot.model.critic import CriticObs
from dppo_robot.model.diffusion import DiffusionPolicy
from dppo_robot.model.diffusion_mlp import DiffusionMLP
from dppo_robot.model.gaussian_mlp import GaussianMLP
from dppo_robot.model.policy_config import PolicyConfig
from dppo_robot.model.unet1d import Unet1D
from dppo_robot.model.vit import VisionDiffusionMLP


def build_denoiser(cfg: PolicyConfig, spec: IOSpec | None = None) -> nn.Module:
    """eps_theta for cfg.denoiser.kind; vit_mlp takes its cameras from the IO spec."""
    d = cfg.denoiser
    cond_dim = cfg.obs_dim * cfg.cond_steps
    if d.kind == "mlp":
        return DiffusionMLP(
            cfg.action_dim,
            cfg.horizon_steps,
            cond_dim,
            time_dim=d.time_dim,
            mlp_dims=d.mlp_dims,
            cond_mlp_dims=d.cond_mlp_dims,
            activation_type=d.activation_type,
            use_layernorm=d.use_layernorm,
            residual_style=d.residual_style,
        )
    if d.kind == "unet1d":
        return Unet1D(
            cfg.action_dim,
            cond_dim,
            diffusion_step_embed_dim=d.diffusion_step_embed_dim,
            dim=d.unet_dim,
            dim_mults=d.dim_mults,
            smaller_encoder=d.smaller_encoder,
            cond_mlp_dims=d.cond_mlp_dims,
            kernel_size=d.kernel_size,
            n_groups=d.n_groups,
            activation_type=d.activation_type,
            cond_predict_scale=d.cond_predict_scale,
            groupnorm_eps=d.groupnorm_eps,
            horizon_steps=cfg.horizon_steps,
        )
    if d.kind == "vit_mlp":
        if spec is None or not spec.cameras:
            raise ValueError("denoiser kind vit_mlp needs an IO spec with at least one camera")
        sizes = {(c.height, c.width) for c in spec.cameras}
        if len(sizes) != 1:
            raise ValueError(f"vit_mlp needs all cameras at one size, got {sorted(sizes)}")
        return VisionDiffusionMLP(
            cfg.action_dim,
            cfg.horizon_steps,
            cond_dim,
            cameras=[c.name for c in spec.cameras],
            img_hw=sizes.pop(),
            img_cond_steps=d.img_cond_steps,
            time_dim=d.time_dim,
            mlp_dims=d.mlp_dims,
            residual_style=d.residual_style,
            use_layernorm=d.use_layernorm,
            activation_type=d.activation_type,
            patch=d.patch_size,
            embed_dim=d.embed_dim,
            depth=d.vit_depth,
            heads=d.vit_heads,
            spatial_emb=d.spatial_emb,
            augment=d.augment,
        )
    raise ValueError(f"unknown denoiser kind {d.kind!r}")


def build_diffusion_policy(cfg: PolicyConfig, spec: IOSpec | None = None) -> DiffusionPolicy:
    """DiffusionPolicy with a fresh denoiser (and actor_ft when ft_denoising_steps > 0)."""
    s = cfg.diffusion
    return DiffusionPolicy(
        build_denoiser(cfg, spec),
        cfg.horizon_steps,
        cfg.action_dim,
        s.denoising_steps,
        ddim_steps=s.ddim_steps,
        ft_denoising_steps=s.ft_denoising_steps,
        denoised_clip_value=s.denoised_clip_value,
        randn_clip_value=s.randn_clip_value,
        final_action_clip_value=s.final_action_clip_value,
        eps_clip_value=s.eps_clip_value,
        eta=s.eta,
        min_sampling_denoising_std=s.min_sampling_denoising_std,
        min_logprob_denoising_std=s.min_logprob_denoising_std,
    )


def build_gaussian_policy(cfg: PolicyConfig) -> GaussianMLP:
    g = cfg.gaussian
    return GaussianMLP(
        cfg.action_dim,
        cfg.horizon_steps,
        cfg.obs_dim * cfg.cond_steps,
        mlp_dims=g.mlp_dims,
        activation_type=g.activation_type,
        tanh_output=g.tanh_output,
        residual_style=g.residual_style,
        use_layernorm=g.use_layernorm,
        fixed_std=g.fixed_std,
        learn_fixed_std=g.learn_fixed_std,
        std_min=g.std_min,
        std_max=g.std_max,
    )


def build_policy(cfg: PolicyConfig, spec: IOSpec | None = None) -> nn.Module:
    """The policy module of cfg.kind."""
    return build_diffusion_policy(cfg, spec) if cfg.kind == "diffusion" else build_gaussian_policy(cfg)


def build_critic(cfg: PolicyConfig, mlp_dims: list[int], residual_style: bool = False) -> CriticObs:
    return CriticObs(cfg.obs_dim * cfg.cond_steps, mlp_dims, residual_style=residual_style)

"""Typed configuration of a policy network and its sampler (defaults: robomimic state MLP)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class DenoiserConfig:
    """The noise-prediction network eps_theta(x_k, k, obs)."""

    kind: Literal["mlp", "unet1d", "vit_mlp"] = "mlp"
    # mlp and vit_mlp heads
    mlp_dims: list[int] = field(default_factory=lambda: [512, 512, 512])
    time_dim: int = 16  # sinusoidal embedding width
    cond_mlp_dims: list[int] | None = None  # optional obs encoder before concatenation
    residual_style: bool = False  # ResidualMLP (pre-activation blocks) instead of MLP
    use_layernorm: bool = False
    activation_type: str = "Mish"
    # unet1d
    unet_dim: int = 64
    dim_mults: list[int] = field(default_factory=lambda: [1, 2, 4])
    kernel_size: int = 5
    n_groups: int | None = 8  # GroupNorm groups; null disables GroupNorm
    diffusion_step_embed_dim: int = 16
    cond_predict_scale: bool = True  # FiLM scale and bias (else bias only)
    smaller_encoder: bool = False
    groupnorm_eps: float = 1e-5  # GroupNorm eps (the reference furniture UNets use 1e-4)
    # vit_mlp (pixel policies): cameras come from the IO spec
    img_cond_steps: int = 1  # most recent frames stacked on channels
    patch_size: int = 8
    embed_dim: int = 128
    vit_depth: int = 1
    vit_heads: int = 4
    spatial_emb: int = 128
    augment: bool = True  # random-shift augmentation while training

    def validate(self) -> None:
        if any(d < 1 for d in self.mlp_dims):
            raise ValueError(f"mlp_dims must be positive, got {self.mlp_dims}")
        if self.residual_style and (len(self.mlp_dims) - 1) % 2:
            raise ValueError(f"residual_style needs an odd number of mlp_dims (1 + 2n), got {len(self.mlp_dims)}")


@dataclass
class DiffusionConfig:
    """Sampler and DPPO chain settings (reference defaults)."""

    denoising_steps: int = 20  # K
    ddim_steps: int | None = None  # S under DDIM; null runs the K-step DDPM chain
    ft_denoising_steps: int = 0  # K': last steps served by the fine-tuned copy (0: not fine-tuning)
    denoised_clip_value: float | None = 1.0  # clamp of predicted x0
    randn_clip_value: float = 10.0  # clamp of sampling noise (3 in fine-tuning)
    final_action_clip_value: float | None = None
    eps_clip_value: float | None = None  # DDIM only
    eta: float = 1.0  # DDIM eta of exploration; evaluation uses 0
    min_sampling_denoising_std: float = 0.1  # exploration std floor (0.04 furniture)
    min_logprob_denoising_std: float = 0.1  # std floor inside log-probs

    def validate(self) -> None:
        if self.denoising_steps < 1:
            raise ValueError("denoising_steps must be >= 1")
        s = self.ddim_steps if self.ddim_steps is not None else self.denoising_steps
        if self.ddim_steps is not None and not 1 <= self.ddim_steps <= self.denoising_steps:
            raise ValueError(f"ddim_steps must be in [1, denoising_steps={self.denoising_steps}]")
        if not 0 <= self.ft_denoising_steps <= s:
            raise ValueError(f"ft_denoising_steps must be in [0, {s}] (the sampling steps)")


@dataclass
class GaussianConfig:
    """The Gaussian MLP policy of the PPO baseline."""

    mlp_dims: list[int] = field(default_factory=lambda: [256, 256, 256])
    activation_type: str = "Mish"
    residual_style: bool = False
    use_layernorm: bool = False
    tanh_output: bool = True
    fixed_std: float | None = 0.1
    learn_fixed_std: bool = True
    std_min: float = 0.01
    std_max: float = 1.0


@dataclass
class PolicyConfig:
    """A whole policy: kind, dimensions and chunking, network, sampler."""

    kind: Literal["diffusion", "gaussian"] = "diffusion"
    obs_dim: int = 23  # Do
    action_dim: int = 7  # Da
    cond_steps: int = 1  # To
    horizon_steps: int = 4  # Tp
    act_steps: int = 4  # Ta
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    gaussian: GaussianConfig = field(default_factory=GaussianConfig)

    def validate(self) -> None:
        for name in ("obs_dim", "action_dim", "cond_steps", "horizon_steps", "act_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.act_steps > self.horizon_steps:
            raise ValueError(f"act_steps (Ta={self.act_steps}) must be <= horizon_steps (Tp={self.horizon_steps})")

"""Diffusion policy: DDPM / DDIM sampling, the fine-tuned actor copy, and chain log-probs.

Matches the reference implementation of DPPO (see ../shared/reference/dppo.md):
epsilon prediction, x0 clipping with eps recomputation under DDIM, clamped sampling noise,
std floors for evaluation (1e-3, DDPM), exploration (min_sampling_denoising_std) and
log-probabilities (min_logprob_denoising_std).

Shapes: x [B, Tp, Da] in normalised action units; cond["state"] [B, To, Do] normalised;
cond["images"][camera] [B, To, 3, H, W] uint8. A chain is [B, K'+1, Tp, Da]: the input of
the first fine-tuned step followed by the output of every fine-tuned step.

Sampling index i runs 0..S-1 in sampling order (S = K for DDPM, ddim_steps for DDIM) and
maps to timestep t = timesteps[i]. The last K' indices (i >= S - K') are the fine-tuned steps
and use actor_ft when it exists; the earlier ones use the frozen actor.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from dppo_robot.model.schedule import NoiseSchedule

SampleMode = Literal["eval", "explore"]
Index = int | torch.Tensor


def map_cond(cond: dict, fn: Callable[[torch.Tensor], torch.Tensor]) -> dict:
    """Apply fn to every tensor of a (possibly nested) condition dict."""
    return {k: map_cond(v, fn) if isinstance(v, dict) else fn(v) for k, v in cond.items()}


def _randn(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """N(0, I) on device, drawn on the generator's device when one is given (a CPU generator can
    drive a GPU policy: evaluation noise is then the same on either device)."""
    if generator is None or generator.device == device:
        return torch.randn(shape, generator=generator, device=device)
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


@dataclass
class Sample:
    """actions [B, Tp, Da] (normalised); chain [B, K'+1, Tp, Da] when requested."""

    actions: torch.Tensor
    chain: torch.Tensor | None = None


class DiffusionPolicy(nn.Module):
    """A denoiser network wrapped with its noise schedule and samplers."""

    def __init__(
        self,
        actor: nn.Module,
        horizon_steps: int,
        action_dim: int,
        denoising_steps: int,
        ddim_steps: int | None = None,
        ft_denoising_steps: int = 0,
        denoised_clip_value: float | None = 1.0,
        randn_clip_value: float = 10.0,
        final_action_clip_value: float | None = None,
        eps_clip_value: float | None = None,
        eta: float = 1.0,
        min_sampling_denoising_std: float = 0.1,
        min_logprob_denoising_std: float = 0.1,
    ) -> None:
        super().__init__()
        self.actor = actor
        self.actor_ft: nn.Module | None = None
        self.horizon_steps = horizon_steps
        self.action_dim = action_dim
        self.schedule = NoiseSchedule(denoising_steps, ddim_steps)
        self.denoised_clip_value = denoised_clip_value
        self.randn_clip_value = randn_clip_value
        self.final_action_clip_value = final_action_clip_value
        self.eps_clip_value = eps_clip_value
        self.eta = eta
        self.min_sampling_denoising_std = min_sampling_denoising_std
        self.min_logprob_denoising_std = min_logprob_denoising_std
        self.ft_denoising_steps = 0
        self.register_buffer("step_t", torch.tensor(self.schedule.timesteps(), dtype=torch.long), persistent=False)
        self._timesteps: list[int] = [int(t) for t in self.schedule.timesteps()]  # host copy: no device syncs
        if ft_denoising_steps:
            self.enable_finetuning(ft_denoising_steps)

    # ----------------------------------------------------------------- structure
    @property
    def use_ddim(self) -> bool:
        return self.schedule.use_ddim

    @property
    def n_steps(self) -> int:
        """S: denoising steps in one sample."""
        return self.schedule.n_sampling_steps

    @property
    def first_ft_index(self) -> int:
        """Sampling index of the first fine-tuned step (S - K')."""
        return self.n_steps - self.ft_denoising_steps

    def enable_finetuning(self, ft_denoising_steps: int) -> None:
        """Create actor_ft as a trainable copy of actor, freeze actor (DPPO's two copies)."""
        if not 1 <= ft_denoising_steps <= self.n_steps:
            raise ValueError(f"ft_denoising_steps must be in [1, {self.n_steps}], got {ft_denoising_steps}")
        self.ft_denoising_steps = ft_denoising_steps
        if self.actor_ft is None:
            self.actor_ft = copy.deepcopy(self.actor)
        for p in self.actor.parameters():
            p.requires_grad_(False)

    def network_for(self, i: int) -> nn.Module:
        """The network that serves sampling index i."""
        if self.actor_ft is not None and i >= self.first_ft_index:
            return self.actor_ft
        return self.actor

    # ----------------------------------------------------------------- one step
    @staticmethod
    def _coef(buf: torch.Tensor, idx: Index) -> torch.Tensor:
        if isinstance(idx, int):
            return buf[idx]
        return buf[idx].view(-1, 1, 1)

    def p_mean_var(
        self, x: torch.Tensor, i: Index, cond: dict, network: nn.Module, eta: float | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance [B, Tp, Da] of p(x_{i+1} | x_i) at sampling index i.

        eta=None is the deterministic DDIM step (sigma = 0); ignored under DDPM.
        """
        s = self.schedule
        if isinstance(i, int):
            t = self._timesteps[i]
            t_vec = torch.full_like(x[:, 0, 0], float(t))
        else:
            t = self.step_t[i]
            t_vec = t.to(x.dtype)
        eps = network(x, t_vec, cond)
        if s.use_ddim:
            a = self._coef(s.ddim_alphas, i)
            a_prev = self._coef(s.ddim_alphas_prev, i)
            sqrt1m = self._coef(s.ddim_sqrt_one_minus_alphas, i)
            x0 = (x - sqrt1m * eps) / a**0.5
        else:
            x0 = self._coef(s.sqrt_recip_alphas_cumprod, t) * x - self._coef(s.sqrt_recipm1_alphas_cumprod, t) * eps
        if self.denoised_clip_value is not None:
            x0 = x0.clamp(-self.denoised_clip_value, self.denoised_clip_value)
            if s.use_ddim:
                eps = (x - a**0.5 * x0) / sqrt1m
        if s.use_ddim and self.eps_clip_value is not None:
            eps = eps.clamp(-self.eps_clip_value, self.eps_clip_value)
        if s.use_ddim:
            eta_v = 0.0 if eta is None else eta
            sigma = (eta_v * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)) ** 0.5).clamp(min=1e-10)
            mean = a_prev**0.5 * x0 + (1.0 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
            logvar = torch.log(sigma**2).expand_as(mean)
        else:
            mean = self._coef(s.ddpm_mu_coef1, t) * x0 + self._coef(s.ddpm_mu_coef2, t) * x
            logvar = self._coef(s.ddpm_logvar_clipped, t).expand_as(mean)
        return mean, logvar

    def step_std(self, i: int, logvar: torch.Tensor, mode: SampleMode) -> torch.Tensor | None:
        """Sampling std of index i, or None when the step adds no noise."""
        if mode == "eval":
            if self.use_ddim or self._timesteps[i] == 0:
                return None
            return torch.exp(0.5 * logvar).clamp(min=1e-3)
        return torch.exp(0.5 * logvar).clamp(min=self.min_sampling_denoising_std)

    # ----------------------------------------------------------------- sampling
    def sample(
        self,
        cond: dict,
        mode: SampleMode = "eval",
        x_T: torch.Tensor | None = None,
        step_noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        return_chain: bool = False,
    ) -> Sample:
        """Run the whole chain from x_T [B, Tp, Da] ~ N(0, I).

        mode="eval" is the reference evaluation (deterministic DDIM; DDPM with std >= 1e-3 and
        none at t = 0); mode="explore" is fine-tuning rollouts (DDIM with eta, every std floored
        at min_sampling_denoising_std). step_noise [B, S, Tp, Da] supplies each step's noise
        (clamped to +-randn_clip_value) instead of drawing it.
        """
        state = cond["state"]
        b = state.shape[0]
        shape = (b, self.horizon_steps, self.action_dim)
        if x_T is None:
            x_T = _randn(shape, generator, state.device)
        x = x_T
        kp = self.ft_denoising_steps
        if return_chain and kp == 0:
            raise ValueError("return_chain needs a fine-tuning policy (ft_denoising_steps >= 1)")
        chain = [x] if return_chain and kp == self.n_steps else []
        eta = None if mode == "eval" else self.eta
        conds: dict[int, dict] = {}  # per network: image features are encoded once per sample
        for i in range(self.n_steps):
            net = self.network_for(i)
            if id(net) not in conds:
                conds[id(net)] = {**cond, "features": net.encode(cond)} if hasattr(net, "encode") else cond
            mean, logvar = self.p_mean_var(x, i, conds[id(net)], net, eta)
            std = self.step_std(i, logvar, mode)
            if std is None:
                x = mean
            else:
                if step_noise is not None:
                    z = step_noise[:, i]
                else:
                    z = _randn(shape, generator, state.device)
                x = mean + std * z.clamp(-self.randn_clip_value, self.randn_clip_value)
            if self.final_action_clip_value is not None and i == self.n_steps - 1:
                x = x.clamp(-self.final_action_clip_value, self.final_action_clip_value)
            if return_chain and i >= self.n_steps - kp - 1:
                chain.append(x)
        return Sample(x, torch.stack(chain, dim=1) if return_chain else None)

    # ----------------------------------------------------------------- log-probs
    def step_log_probs(
        self,
        cond: dict,
        x_prev: torch.Tensor,
        x_next: torch.Tensor,
        ft_index: torch.Tensor,
        use_base_policy: bool = False,
    ) -> torch.Tensor:
        """log p(x_next | x_prev) per element [N, Tp, Da] at fine-tuned step ft_index [N] in [0, K').

        The exploration policy of the step (DDIM with eta) with std floored at
        min_logprob_denoising_std, as PPO's ratio needs it.
        """
        if self.ft_denoising_steps == 0:
            raise ValueError("step_log_probs needs a fine-tuning policy (ft_denoising_steps >= 1)")
        i = ft_index.long() + self.first_ft_index
        net = self.actor if use_base_policy or self.actor_ft is None else self.actor_ft
        mean, logvar = self.p_mean_var(x_prev, i, cond, net, self.eta)
        std = torch.exp(0.5 * logvar).clamp(min=self.min_logprob_denoising_std)
        # no argument validation: it would cost a device sync per call on a GPU
        return torch.distributions.Normal(mean, std, validate_args=False).log_prob(x_next)

    def chain_log_probs(self, cond: dict, chains: torch.Tensor, use_base_policy: bool = False) -> torch.Tensor:
        """Log-probs [B, K', Tp, Da] of every fine-tuned transition of chains [B, K'+1, Tp, Da]."""
        b, n = chains.shape[:2]
        kp = self.ft_denoising_steps
        if n != kp + 1:
            raise ValueError(f"chains has {n} elements along dim 1; expected K'+1 = {kp + 1}")
        rep = map_cond(cond, lambda v: v.repeat_interleave(kp, dim=0))
        prev = chains[:, :-1].reshape(b * kp, *chains.shape[2:])
        nxt = chains[:, 1:].reshape(b * kp, *chains.shape[2:])
        idx = torch.arange(kp, device=chains.device).repeat(b)
        return self.step_log_probs(rep, prev, nxt, idx, use_base_policy).view(b, kp, *chains.shape[2:])

    # ----------------------------------------------------------------- training
    def bc_loss(self, actions: torch.Tensor, cond: dict, generator: torch.Generator | None = None) -> torch.Tensor:
        """Denoising (epsilon-prediction) MSE for behaviour cloning; actions [B, Tp, Da] normalised."""
        b = actions.shape[0]
        s = self.schedule
        t = torch.randint(0, s.num_steps, (b,), device=actions.device, generator=generator)
        noise = torch.randn(actions.shape, device=actions.device, generator=generator)
        x_t = self._coef(s.sqrt_alphas_cumprod, t) * actions + self._coef(s.sqrt_one_minus_alphas_cumprod, t) * noise
        return F.mse_loss(self.actor(x_t, t.to(actions.dtype), cond), noise)

"""DPPO loss: PPO's clipped surrogate over single denoising transitions of the fine-tuned steps.

Shapes (B minibatch of (env step x denoising step) pairs, drawn by RolloutBuffer.minibatches):
    cond             {"state": [B, To, Do], "images": {camera: [B, To, 3, H, W] uint8}} (normalised)
    chains_prev/next [B, Tp, Da]   x at fine-tuned index k and x after it
    denoising_idx    [B]           k in [0, K'); K'-1 is the last (output) step
    old_logprobs     [B, Tp, Da]   per-element log-probs at collection time
    advantages, returns, old_values [B]

Reference (irom-princeton/dppo, model/diffusion/diffusion_ppo.py PPODiffusion.loss with
get_logprobs_subsample, agent/finetune/train_ppo_diffusion_agent.py), reproduced step by step:
1. new per-element log-probs of the transition under actor_ft (std floored at
   min_logprob_denoising_std, inside DiffusionPolicy.step_log_probs);
2. new AND old per-element log-probs clamped to [-5, 2] (before any reduction);
3. only the first reward_horizon (= Ta) chunk steps kept, then the MEAN over (Ta, Da);
4. advantages normalised over the minibatch (mean / (unbiased std + 1e-8)), then clamped to the
   [lower, upper] quantiles (0 and 1 by default: a no-op), then multiplied by
   gamma_denoising^(K'-k-1) of each sample's denoising index (normalise first, discount after);
5. ratio = exp(new - old); clip coefficient of each sample from the exponential schedule over k;
6. approx_kl = mean((ratio - 1) - log ratio) (Schulman's k3), clipfrac = mean(|ratio - 1| > clip);
7. pg_loss = mean(max(-A ratio, -A clamp(ratio, 1 - c, 1 + c)));
8. v_loss = 0.5 mean((V(s) - returns)^2), or the clipped-value variant when clip_vloss_coef is set
   (off in every reference config); the critic sees the pair's observation, so an env step drawn
   with several denoising indices counts several times, as in the reference;
9. optional BC regulariser (off in every reference config): chains sampled by the frozen base
   policy, their full-chain log-probs under actor_ft, clamped, averaged over (Tp, Da), negated.
The returned loss already includes the coefficients: pg_loss + vf_coef * v_loss + bc_loss_coeff *
bc_loss. The reference's entropy term for diffusion is -mean(eta), a constant unless eta is learned;
with its ent_coef of 0 it is dropped here.

Deviation: with K' = 1 the reference divides 0 by 0 (NaN clip coefficient); here the single step
uses clip_ploss_coef, as the reference's earlier full-chain version did.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import nn

from dppo_robot.model.diffusion import DiffusionPolicy

if TYPE_CHECKING:
    from dppo_robot.rl.ppo_update import PPOConfig

LOGPROB_MIN = -5.0
LOGPROB_MAX = 2.0


def clip_coef_schedule(
    ft_denoising_steps: int,
    clip_ploss_coef: float,
    clip_ploss_coef_base: float = 0.001,
    rate: float = 3.0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """PPO clip coefficient of each fine-tuned denoising index [K'].

    c_k = base + (clip - base) * (exp(rate * k / (K'-1)) - 1) / (exp(rate) - 1): base at the first
    fine-tuned step, clip_ploss_coef at the last (output) step. float32 like the reference.
    """
    if ft_denoising_steps < 1:
        raise ValueError(f"ft_denoising_steps must be >= 1, got {ft_denoising_steps}")
    if ft_denoising_steps == 1:
        return torch.tensor([clip_ploss_coef], dtype=torch.float32, device=device)
    t = torch.arange(ft_denoising_steps, device=device).float() / (ft_denoising_steps - 1)
    return clip_ploss_coef_base + (clip_ploss_coef - clip_ploss_coef_base) * (torch.exp(rate * t) - 1) / (
        math.exp(rate) - 1
    )


def denoising_discount(
    ft_denoising_steps: int, gamma_denoising: float, device: torch.device | str | None = None
) -> torch.Tensor:
    """Advantage factor gamma_denoising^(K'-k-1) of each fine-tuned index k [K'] (last step: 1)."""
    return torch.tensor(
        [gamma_denoising ** (ft_denoising_steps - k - 1) for k in range(ft_denoising_steps)],
        dtype=torch.float32,
        device=device,
    )


def normalize_advantages(advantages: torch.Tensor, cfg: PPOConfig) -> torch.Tensor:
    """Per-minibatch normalisation (when cfg.norm_adv) and quantile clipping, reference order."""
    if cfg.norm_adv:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    lo, hi = cfg.clip_advantage_lower_quantile, cfg.clip_advantage_upper_quantile
    if lo > 0.0 or hi < 1.0:  # quantiles 0 and 1 are the min and max: clamping is a no-op
        advantages = advantages.clamp(min=torch.quantile(advantages, lo), max=torch.quantile(advantages, hi))
    return advantages


def value_loss(
    critic: nn.Module, cond: dict, returns: torch.Tensor, old_values: torch.Tensor, clip_vloss_coef: float | None
) -> torch.Tensor:
    """0.5 * MSE of V(s) against the GAE returns, optionally with PPO value clipping."""
    new_values = critic(cond).view(-1)
    if clip_vloss_coef is None:
        return 0.5 * ((new_values - returns) ** 2).mean()
    clipped = old_values + torch.clamp(new_values - old_values, -clip_vloss_coef, clip_vloss_coef)
    return 0.5 * torch.max((new_values - returns) ** 2, (clipped - returns) ** 2).mean()


def dppo_loss(
    policy: DiffusionPolicy,
    cond: dict,
    chains_prev: torch.Tensor,
    chains_next: torch.Tensor,
    denoising_idx: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    old_values: torch.Tensor,
    critic: nn.Module,
    cfg: PPOConfig,
    act_steps: int,
) -> tuple[torch.Tensor, dict[str, float]]:
    """DPPO loss of one minibatch and its statistics (see the module docstring for every step).

    act_steps is Ta; cfg.reward_horizon overrides it when set. Returns (loss, stats) with
    loss = pg_loss + vf_coef * v_loss + bc_loss_coeff * bc_loss and stats floats: loss, pg_loss,
    v_loss, bc_loss, approx_kl, clipfrac, ratio (mean), eta.
    """
    kp = policy.ft_denoising_steps
    horizon = cfg.reward_horizon if cfg.reward_horizon is not None else act_steps
    device = chains_prev.device
    idx = denoising_idx.long()

    new_lp = policy.step_log_probs(cond, chains_prev, chains_next, idx)
    new_lp = new_lp.clamp(LOGPROB_MIN, LOGPROB_MAX)[:, :horizon].mean(dim=(-1, -2))
    old_lp = old_logprobs.clamp(LOGPROB_MIN, LOGPROB_MAX)[:, :horizon].mean(dim=(-1, -2))

    bc_loss = torch.zeros((), device=device)
    if cfg.use_bc_loss:
        bc_loss = _bc_loss(policy, cond)

    adv = normalize_advantages(advantages, cfg)
    adv = adv * denoising_discount(kp, cfg.gamma_denoising, device)[idx]

    logratio = new_lp - old_lp
    ratio = logratio.exp()
    clip = clip_coef_schedule(kp, cfg.clip_ploss_coef, cfg.clip_ploss_coef_base, cfg.clip_ploss_coef_rate, device)[idx]
    with torch.no_grad():
        approx_kl = ((ratio - 1) - logratio).mean()
        clipfrac = ((ratio - 1.0).abs() > clip).float().mean()

    pg_loss = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 1 - clip, 1 + clip)).mean()
    v_loss = value_loss(critic, cond, returns, old_values, cfg.clip_vloss_coef)
    loss = pg_loss + cfg.vf_coef * v_loss + cfg.bc_loss_coeff * bc_loss
    stats = {
        "loss": loss.item(),
        "pg_loss": pg_loss.item(),
        "v_loss": v_loss.item(),
        "bc_loss": bc_loss.item(),
        "approx_kl": approx_kl.item(),
        "clipfrac": clipfrac.item(),
        "ratio": ratio.mean().item(),
        "eta": float(policy.eta) if policy.use_ddim else 1.0,
    }
    return loss, stats


@contextmanager
def _base_policy(policy: DiffusionPolicy):
    """Temporarily serve every sampling step with the frozen base actor."""
    ft = policy.actor_ft
    policy.actor_ft = None
    try:
        yield policy
    finally:
        policy.actor_ft = ft


def _bc_loss(policy: DiffusionPolicy, cond: dict) -> torch.Tensor:
    """-mean log-prob under actor_ft of full chains sampled by the base policy (reference BC term)."""
    with torch.no_grad(), _base_policy(policy):
        chains = policy.sample(cond, mode="explore", return_chain=True).chain
    lp = policy.chain_log_probs(cond, chains)  # [B, K', Tp, Da]
    return -lp.clamp(LOGPROB_MIN, LOGPROB_MAX).mean(dim=(-1, -2)).mean()

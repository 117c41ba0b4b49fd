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

dppo_backward computes the same gradient in row chunks of the minibatch (speed on the CPU; steps
2-5 that need the whole minibatch are computed once over all of it).

Deviation: with K' = 1 the reference divides 0 by 0 (NaN clip coefficient); here the single step
uses clip_ploss_coef, as the reference's earlier full-chain version did.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import nn

from dppo_robot.model.diffusion import DiffusionPolicy, map_cond

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


def value_loss_terms(
    critic: nn.Module, cond: dict, returns: torch.Tensor, old_values: torch.Tensor, clip_vloss_coef: float | None
) -> torch.Tensor:
    """Per-sample value losses [B]: 0.5 * (V(s) - returns)^2, or the PPO-clipped variant."""
    new_values = critic(cond).view(-1)
    if clip_vloss_coef is None:
        return 0.5 * (new_values - returns) ** 2
    clipped = old_values + torch.clamp(new_values - old_values, -clip_vloss_coef, clip_vloss_coef)
    return 0.5 * torch.max((new_values - returns) ** 2, (clipped - returns) ** 2)


def value_loss(
    critic: nn.Module, cond: dict, returns: torch.Tensor, old_values: torch.Tensor, clip_vloss_coef: float | None
) -> torch.Tensor:
    """0.5 * MSE of V(s) against the GAE returns, optionally with PPO value clipping."""
    return value_loss_terms(critic, cond, returns, old_values, clip_vloss_coef).mean()


def _minibatch_terms(
    policy: DiffusionPolicy,
    denoising_idx: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    cfg: PPOConfig,
    horizon: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What needs the whole minibatch, per sample [B]: old log-prob means (steps 2-3), advantages
    normalised then discounted (step 4) and clip coefficients (step 5)."""
    kp = policy.ft_denoising_steps
    device = advantages.device
    idx = denoising_idx.long()
    old_lp = old_logprobs.clamp(LOGPROB_MIN, LOGPROB_MAX)[:, :horizon].mean(dim=(-1, -2))
    adv = normalize_advantages(advantages, cfg)
    adv = adv * denoising_discount(kp, cfg.gamma_denoising, device)[idx]
    clip = clip_coef_schedule(kp, cfg.clip_ploss_coef, cfg.clip_ploss_coef_base, cfg.clip_ploss_coef_rate, device)[idx]
    return old_lp, adv, clip


def _sample_terms(
    policy: DiffusionPolicy,
    critic: nn.Module,
    cond: dict,
    chains_prev: torch.Tensor,
    chains_next: torch.Tensor,
    denoising_idx: torch.Tensor,
    old_lp: torch.Tensor,
    adv: torch.Tensor,
    clip: torch.Tensor,
    returns: torch.Tensor,
    old_values: torch.Tensor,
    cfg: PPOConfig,
    horizon: int,
) -> tuple[torch.Tensor, ...]:
    """Per-sample terms [b] of any slice of the minibatch (steps 1-3 and 5-8):
    policy loss, value loss, k3 KL (no grad), clipped flag (no grad), ratio."""
    new_lp = policy.step_log_probs(cond, chains_prev, chains_next, denoising_idx.long())
    new_lp = new_lp.clamp(LOGPROB_MIN, LOGPROB_MAX)[:, :horizon].mean(dim=(-1, -2))
    logratio = new_lp - old_lp
    ratio = logratio.exp()
    with torch.no_grad():
        kl = (ratio - 1) - logratio
        clipped = ((ratio - 1.0).abs() > clip).float()
    pg = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 1 - clip, 1 + clip))
    v = value_loss_terms(critic, cond, returns, old_values, cfg.clip_vloss_coef)
    return pg, v, kl, clipped, ratio


STAT_NAMES = ("loss", "pg_loss", "v_loss", "bc_loss", "approx_kl", "clipfrac", "ratio")


def _stats(policy: DiffusionPolicy, values: list[torch.Tensor]) -> dict[str, float]:
    """One device-to-host copy for all statistics (a single sync per minibatch on a GPU)."""
    stats = dict(zip(STAT_NAMES, torch.stack([t.detach() for t in values]).tolist()))
    stats["eta"] = float(policy.eta) if policy.use_ddim else 1.0
    return stats


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
    horizon = cfg.reward_horizon if cfg.reward_horizon is not None else act_steps
    old_lp, adv, clip = _minibatch_terms(policy, denoising_idx, old_logprobs, advantages, cfg, horizon)
    bc_loss = torch.zeros((), device=chains_prev.device)
    if cfg.use_bc_loss:
        bc_loss = _bc_loss(policy, cond)
    pg, v, kl, clipped, ratio = _sample_terms(
        policy,
        critic,
        cond,
        chains_prev,
        chains_next,
        denoising_idx,
        old_lp,
        adv,
        clip,
        returns,
        old_values,
        cfg,
        horizon,
    )
    pg_loss, v_loss = pg.mean(), v.mean()
    loss = pg_loss + cfg.vf_coef * v_loss + cfg.bc_loss_coeff * bc_loss
    return loss, _stats(policy, [loss, pg_loss, v_loss, bc_loss, kl.mean(), clipped.mean(), ratio.mean()])


def dppo_backward(
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
    chunk_rows: int = 0,
) -> dict[str, float]:
    """dppo_loss(...) followed by loss.backward(), optionally in row chunks of the minibatch.

    With 0 < chunk_rows < B the minibatch-wide quantities (advantage normalisation and quantiles,
    discounts, clip coefficients, old log-probs) are computed once over all B samples, then the
    network runs forward and backward on chunks of chunk_rows samples, each backpropagating
    (sum of its pg + vf_coef * v terms) / B. The summed gradients are those of the one-pass mean
    (the same loss and gradient; only the floating-point summation order differs), and the
    returned statistics are the same. On a CPU this is faster at the reference's batch 10000:
    each layer's activations are chunk_rows x width instead of B x width, so they stay in cache
    and reuse freed heap memory instead of page-faulting in fresh allocations. The BC
    regulariser (which samples chains) always takes the one-pass path.
    """
    b = chains_prev.shape[0]
    if cfg.use_bc_loss or chunk_rows <= 0 or chunk_rows >= b:
        loss, stats = dppo_loss(
            policy,
            cond,
            chains_prev,
            chains_next,
            denoising_idx,
            old_logprobs,
            advantages,
            returns,
            old_values,
            critic,
            cfg,
            act_steps,
        )
        loss.backward()
        return stats
    horizon = cfg.reward_horizon if cfg.reward_horizon is not None else act_steps
    old_lp, adv, clip = _minibatch_terms(policy, denoising_idx, old_logprobs, advantages, cfg, horizon)
    sums = torch.zeros(5, device=chains_prev.device)  # pg, v, kl, clipped, ratio
    for s in range(0, b, chunk_rows):
        sl = slice(s, s + chunk_rows)
        pg, v, kl, clipped, ratio = _sample_terms(
            policy,
            critic,
            map_cond(cond, lambda x, sl=sl: x[sl]),
            chains_prev[sl],
            chains_next[sl],
            denoising_idx[sl],
            old_lp[sl],
            adv[sl],
            clip[sl],
            returns[sl],
            old_values[sl],
            cfg,
            horizon,
        )
        pg_sum, v_sum = pg.sum(), v.sum()
        ((pg_sum + cfg.vf_coef * v_sum) / b).backward()
        sums += torch.stack([pg_sum.detach(), v_sum.detach(), kl.sum(), clipped.sum(), ratio.detach().sum()])
    pg_loss, v_loss, kl_mean, clipfrac, ratio_mean = sums / b
    loss = pg_loss + cfg.vf_coef * v_loss
    return _stats(policy, [loss, pg_loss, v_loss, torch.zeros_like(loss), kl_mean, clipfrac, ratio_mean])


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

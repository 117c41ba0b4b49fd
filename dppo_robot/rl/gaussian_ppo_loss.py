"""PPO loss of the Gaussian MLP baseline, and the baseline's exploration sampler.

Shapes (B minibatch of env steps):
    cond          {"state": [B, To, Do]} (normalised)
    actions       [B, Tp, Da]   the sampled chunk (normalised units)
    old_logprobs  [B, Tp, Da]   per-element log-probs at collection time
    advantages, returns, old_values [B]

Reference (irom-princeton/dppo, model/rl/gaussian_ppo.py PPO_Gaussian.loss, model/rl/gaussian_vpg.py
get_logprobs, model/common/gaussian.py), reproduced:
- log-prob of the chunk = MEAN of the per-element Normal log-probs over the whole predicted chunk
  (Tp x Da flattened), not only the executed Ta steps (cfg.gaussian_logprob_steps = "horizon");
  "act" restricts the mean to the first Ta steps (not in the reference; identical when Tp = Ta, as
  in every reference Gaussian config);
- the clamp to [-5, 2] is applied AFTER that mean, to new and old log-probs (unlike DPPO, which
  clamps per element);
- approx_kl = nanmean((ratio - 1) - log ratio), clipfrac with the single clip_ploss_coef, both
  computed before the advantages are normalised (no quantile clipping here);
- entropy = mean over batch and elements of the Normal entropy, entropy term -ent_coef * entropy
  (ent_coef 0 in the reference configs); value loss as DPPO; optional BC term against a frozen
  base policy.
The returned loss = pg_loss - ent_coef * entropy + vf_coef * v_loss + bc_loss_coeff * bc_loss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from dppo_robot.model.gaussian_mlp import GaussianMLP
from dppo_robot.rl.dppo_loss import LOGPROB_MAX, LOGPROB_MIN, value_loss

if TYPE_CHECKING:
    from dppo_robot.rl.ppo_update import PPOConfig


def sample_gaussian(
    policy: GaussianMLP,
    cond: dict,
    deterministic: bool = False,
    randn_clip_value: float = 3.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Chunk [B, Tp, Da]: mean + std * z with z ~ N(0, I) clamped to +-randn_clip_value.

    The reference samples then clamps the action to mean +- randn_clip_value * std, the same thing.
    deterministic returns the mean (the reference draws with std 1e-4, a negligible difference).
    """
    mean, std = policy(cond)
    if deterministic:
        return mean
    z = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + std * z.clamp(-randn_clip_value, randn_clip_value)


def chunk_log_prob(
    policy: GaussianMLP, cond: dict, actions: torch.Tensor, steps: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(log-prob [B] = mean over the first `steps` chunk steps (all when None) and Da, entropy, mean std)."""
    mean, std = policy(cond)
    dist = torch.distributions.Normal(mean, std)
    lp = dist.log_prob(actions)
    lp = (lp if steps is None else lp[:, :steps]).mean(dim=(-1, -2))
    return lp, dist.entropy().mean(), std.mean()


def gaussian_ppo_loss(
    policy: GaussianMLP,
    cond: dict,
    actions: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    old_values: torch.Tensor,
    critic: nn.Module,
    cfg: PPOConfig,
    act_steps: int,
    base_policy: GaussianMLP | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Gaussian PPO loss of one minibatch and its statistics.

    Stats floats: loss, pg_loss, v_loss, bc_loss, entropy, std, approx_kl, clipfrac, ratio.
    base_policy (the frozen pre-trained copy) is needed only when cfg.use_bc_loss.
    """
    steps = None if cfg.gaussian_logprob_steps == "horizon" else act_steps
    new_lp, entropy, std = chunk_log_prob(policy, cond, actions, steps)
    new_lp = new_lp.clamp(LOGPROB_MIN, LOGPROB_MAX)
    old = old_logprobs if steps is None else old_logprobs[:, :steps]
    old_lp = old.mean(dim=(-1, -2)).clamp(LOGPROB_MIN, LOGPROB_MAX)

    logratio = new_lp - old_lp
    ratio = logratio.exp()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - logratio).nanmean()
        clipfrac = ((ratio - 1.0).abs() > cfg.clip_ploss_coef).float().mean()

    adv = advantages
    if cfg.norm_adv:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    c = cfg.clip_ploss_coef
    pg_loss = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 1 - c, 1 + c)).mean()
    v_loss = value_loss(critic, cond, returns, old_values, cfg.clip_vloss_coef)

    bc_loss = torch.zeros((), device=actions.device)
    if cfg.use_bc_loss:
        if base_policy is None:
            raise ValueError("use_bc_loss needs the frozen base policy (base_policy=...)")
        with torch.no_grad():
            teacher = sample_gaussian(base_policy, cond, randn_clip_value=cfg.gaussian_randn_clip_value)
        bc_lp, _, _ = chunk_log_prob(policy, cond, teacher, steps)
        bc_loss = -bc_lp.clamp(LOGPROB_MIN, LOGPROB_MAX).mean()

    loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss + cfg.bc_loss_coeff * bc_loss
    stats = {
        "loss": loss.item(),
        "pg_loss": pg_loss.item(),
        "v_loss": v_loss.item(),
        "bc_loss": bc_loss.item(),
        "entropy": entropy.item(),
        "std": std.item(),
        "approx_kl": approx_kl.item(),
        "clipfrac": clipfrac.item(),
        "ratio": ratio.mean().item(),
    }
    return loss, stats

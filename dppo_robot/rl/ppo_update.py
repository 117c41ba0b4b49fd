"""PPO configuration, optimizers and the update loop shared by DPPO and the Gaussian PPO baseline.

Shapes: see rollout_buffer (T env steps x N envs; DPPO minibatches are (env step x denoising
step) pairs over T*N*K', Gaussian ones env steps over T*N).

Reference (irom-princeton/dppo agent/finetune/train_ppo_agent.py, train_ppo_diffusion_agent.py,
train_ppo_gaussian_agent.py), reproduced by ppo_update:
- update_epochs passes; each a fresh permutation cut into floor(total / batch_size) minibatches;
- per minibatch (update_minibatch): zero both optimizers' grads, backward the total loss (on the
  CPU in cpu_chunk_rows row chunks, the same gradient), then, only when
  itr >= n_critic_warmup_itr, clip the actor's grad norm (if max_grad_norm is set; the critic is
  never clipped) and step the actor; the critic steps every minibatch;
- early stop: after a minibatch's step, when target_kl is set and that minibatch's approx_kl
  (measured before the step) exceeds it, both loops end;
- optimizers: AdamW over actor_ft (DPPO) or the whole Gaussian policy, and over the critic; each
  with the cosine warm-up schedule, stepped once per iteration by PPOOptimizers.step_schedulers,
  the actor's only from itr >= n_critic_warmup_itr. The reference steps the schedulers on
  evaluation iterations too (it only skips the update), so call it every iteration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from dppo_robot.model.diffusion import DiffusionPolicy
from dppo_robot.rl.critic_warmup import CriticWarmup, explained_variance
from dppo_robot.rl.dppo_loss import dppo_backward, dppo_loss
from dppo_robot.rl.gaussian_ppo_loss import gaussian_ppo_loss
from dppo_robot.rl.lr_schedule import CosineWarmupSchedule
from dppo_robot.rl.rollout_buffer import Minibatch, RolloutBuffer


@dataclass
class LRScheduleConfig:
    """Cosine schedule with linear warm-up (reference CosineAnnealingWarmupRestarts, cycle_mult 1)."""

    first_cycle_steps: int = 1000  # iterations of one cosine cycle (10000 furniture)
    warmup_steps: int = 10  # linear warm-up from min_lr to the optimizer's lr
    min_lr: float = 1e-5  # robomimic: equal to the max lr (constant); furniture actor 1e-6

    def validate(self) -> None:
        if not 0 <= self.warmup_steps < self.first_cycle_steps:
            raise ValueError("need 0 <= warmup_steps < first_cycle_steps")


@dataclass
class PPOConfig:
    """PPO / DPPO hyper-parameters; defaults are the reference robomimic state configs
    (cfg/robomimic/finetune/{lift,can,square}/ft_ppo_diffusion_mlp.yaml)."""

    # optimisation
    update_epochs: int = 10  # passes over the iteration's data (5 furniture)
    batch_size: int = 7500  # minibatch size: (env step x denoising step) pairs for DPPO (10000 square, 8800 furniture)
    logprob_batch_size: int = 10000  # env steps per chunk when computing old log-probs / values
    actor_lr: float = 1e-4  # reference robomimic lift/can/square (1e-5 furniture)
    actor_weight_decay: float = 0.0
    actor_lr_scheduler: LRScheduleConfig = field(default_factory=lambda: LRScheduleConfig(min_lr=1e-5))
    critic_lr: float = 1e-3
    critic_weight_decay: float = 0.0
    critic_lr_scheduler: LRScheduleConfig = field(default_factory=lambda: LRScheduleConfig(min_lr=1e-3))
    n_critic_warmup_itr: int = 2  # iterations that update only the critic (1 furniture)
    # Not in the reference: also keep the actor still until the critic's explained variance on the
    # iteration's data reaches this (null: the count alone, as the reference), for at most
    # max_critic_warmup_itr iterations; see dppo_robot.rl.critic_warmup.
    critic_warmup_ev_threshold: float | None = None
    max_critic_warmup_itr: int | None = None
    target_kl: float | None = 1.0  # stop the iteration's updates once a minibatch's approx_kl exceeds it
    max_grad_norm: float | None = None  # actor grad-norm clipping (off in the reference)
    # returns
    gamma: float = 0.999  # per env step (one executed chunk)
    gae_lambda: float = 0.95
    reward_scale_running: bool = True  # divide rewards by the running std of discounted returns
    reward_scale_const: float = 1.0  # constant factor applied after the running scaler
    reward_scale_gamma: float = 0.99  # discount of the scaler's return sum (fixed in the reference)
    reward_scale_clip: float = 10.0  # clip of scaled rewards (fixed in the reference)
    # policy loss
    gamma_denoising: float = 0.99  # advantage discount over denoising steps (0.9 furniture)
    clip_ploss_coef: float = 0.01  # PPO clip at the last denoising step (0.001 furniture)
    clip_ploss_coef_base: float = 0.001  # PPO clip at the first fine-tuned denoising step
    clip_ploss_coef_rate: float = 3.0  # exponential interpolation rate over denoising steps
    clip_vloss_coef: float | None = None  # value clipping (off in the reference configs)
    clip_advantage_lower_quantile: float = 0.0  # advantage quantile clamp (0, 1: off)
    clip_advantage_upper_quantile: float = 1.0
    norm_adv: bool = True  # per-minibatch advantage normalisation
    vf_coef: float = 0.5
    ent_coef: float = 0.0  # Gaussian entropy bonus (DPPO has none)
    reward_horizon: int | None = None  # chunk steps in the log-prob mean; null: Ta (act_steps)
    use_bc_loss: bool = False  # BC regulariser towards the frozen base policy (off in the reference)
    bc_loss_coeff: float = 0.0
    # Gaussian baseline
    gaussian_logprob_steps: Literal["horizon", "act"] = "horizon"  # reference: mean over the whole Tp chunk
    gaussian_randn_clip_value: float = 3.0  # exploration noise clamp of the Gaussian policy
    # speed only (not in the reference): rows per forward/backward pass of a DPPO minibatch on the
    # CPU, gradients accumulated over the passes (same loss and gradient as one pass, see
    # dppo_loss.dppo_backward); 0: one pass, as the reference. GPU runs always take one pass.
    # Square MLP, batch 10000, 2 threads, quiet machine (bench update): 2048 rows 1.59x the
    # reference's samples/s, one pass 1.41x. On an oversubscribed machine the chunks' extra
    # parallel regions stall and one pass is faster: set 0 there.
    cpu_chunk_rows: int = 2048

    def validate(self) -> None:
        if self.update_epochs < 1 or self.batch_size < 1 or self.logprob_batch_size < 1:
            raise ValueError("update_epochs, batch_size and logprob_batch_size must be >= 1")
        if not 0 < self.gamma <= 1 or not 0 <= self.gae_lambda <= 1 or not 0 < self.gamma_denoising <= 1:
            raise ValueError("gamma and gamma_denoising must be in (0, 1], gae_lambda in [0, 1]")
        if not 0 <= self.clip_advantage_lower_quantile <= self.clip_advantage_upper_quantile <= 1:
            raise ValueError("need 0 <= clip_advantage_lower_quantile <= clip_advantage_upper_quantile <= 1")
        if self.clip_ploss_coef <= 0 or self.clip_ploss_coef_base <= 0:
            raise ValueError("clip_ploss_coef and clip_ploss_coef_base must be > 0")
        if self.n_critic_warmup_itr < 0:
            raise ValueError("n_critic_warmup_itr must be >= 0")
        CriticWarmup(self.n_critic_warmup_itr, self.critic_warmup_ev_threshold, self.max_critic_warmup_itr)
        if self.reward_horizon is not None and self.reward_horizon < 1:
            raise ValueError("reward_horizon must be >= 1 (or null for Ta)")
        if self.cpu_chunk_rows < 0:
            raise ValueError("cpu_chunk_rows must be >= 0 (0: one pass per minibatch)")


def actor_parameters(policy: nn.Module) -> list[nn.Parameter]:
    """The trainable actor: actor_ft of a DiffusionPolicy, else the whole (Gaussian) policy."""
    if isinstance(policy, DiffusionPolicy):
        if policy.actor_ft is None:
            raise ValueError("DPPO needs a fine-tuning DiffusionPolicy (ft_denoising_steps >= 1)")
        return list(policy.actor_ft.parameters())
    return [p for p in policy.parameters() if p.requires_grad]


@dataclass
class PPOOptimizers:
    actor: torch.optim.Optimizer
    critic: torch.optim.Optimizer
    actor_schedule: CosineWarmupSchedule
    critic_schedule: CosineWarmupSchedule

    def step_schedulers(self, itr: int, n_critic_warmup_itr: int, actor_active: bool | None = None) -> None:
        """End of iteration itr (training or evaluation): the actor's schedule only after warm-up
        (actor_active when a warm-up gate decides it, else itr >= n_critic_warmup_itr)."""
        if (itr >= n_critic_warmup_itr) if actor_active is None else actor_active:
            self.actor_schedule.step()
        self.critic_schedule.step()

    def state_dict(self) -> dict:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "actor_schedule": self.actor_schedule.state_dict(),
            "critic_schedule": self.critic_schedule.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.actor_schedule.load_state_dict(state["actor_schedule"])
        self.critic_schedule.load_state_dict(state["critic_schedule"])


def build_optimizers(policy: nn.Module, critic: nn.Module, cfg: PPOConfig) -> PPOOptimizers:
    """AdamW for actor and critic with their cosine warm-up schedules (lr starts at min_lr).

    The fused AdamW kernel (one pass per parameter instead of about ten elementwise ops) is the
    reference's AdamW update; only float rounding may differ.
    """
    actor = torch.optim.AdamW(
        actor_parameters(policy), lr=cfg.actor_lr, weight_decay=cfg.actor_weight_decay, fused=True
    )
    critic_opt = torch.optim.AdamW(
        critic.parameters(), lr=cfg.critic_lr, weight_decay=cfg.critic_weight_decay, fused=True
    )
    a, c = cfg.actor_lr_scheduler, cfg.critic_lr_scheduler
    return PPOOptimizers(
        actor,
        critic_opt,
        CosineWarmupSchedule(actor, a.first_cycle_steps, cfg.actor_lr, a.min_lr, a.warmup_steps),
        CosineWarmupSchedule(critic_opt, c.first_cycle_steps, cfg.critic_lr, c.min_lr, c.warmup_steps),
    )


def minibatch_loss(
    policy: nn.Module,
    critic: nn.Module,
    mb: Minibatch,
    cfg: PPOConfig,
    act_steps: int,
    base_policy: nn.Module | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The algorithm's loss of one minibatch: DPPO when it carries chains, Gaussian PPO otherwise."""
    if mb.chains_prev is not None:
        return dppo_loss(
            policy,
            mb.cond,
            mb.chains_prev,
            mb.chains_next,
            mb.denoising_idx,
            mb.old_logprobs,
            mb.advantages,
            mb.returns,
            mb.old_values,
            critic,
            cfg,
            act_steps,
        )
    return gaussian_ppo_loss(
        policy,
        mb.cond,
        mb.actions,
        mb.old_logprobs,
        mb.advantages,
        mb.returns,
        mb.old_values,
        critic,
        cfg,
        act_steps,
        base_policy,
    )


def minibatch_backward(
    policy: nn.Module,
    critic: nn.Module,
    mb: Minibatch,
    cfg: PPOConfig,
    act_steps: int,
    base_policy: nn.Module | None = None,
) -> dict[str, float]:
    """Accumulate the gradients of minibatch_loss into .grad and return its statistics.

    DPPO on the CPU runs in cfg.cpu_chunk_rows row chunks (dppo_backward); everything else in one pass.
    """
    if mb.chains_prev is not None:
        chunk = cfg.cpu_chunk_rows if mb.chains_prev.device.type == "cpu" else 0
        return dppo_backward(
            policy,
            mb.cond,
            mb.chains_prev,
            mb.chains_next,
            mb.denoising_idx,
            mb.old_logprobs,
            mb.advantages,
            mb.returns,
            mb.old_values,
            critic,
            cfg,
            act_steps,
            chunk,
        )
    loss, stats = minibatch_loss(policy, critic, mb, cfg, act_steps, base_policy)
    loss.backward()
    return stats


def update_minibatch(
    policy: nn.Module,
    critic: nn.Module,
    mb: Minibatch,
    optimizers: PPOOptimizers,
    cfg: PPOConfig,
    act_steps: int,
    actor_step: bool,
    base_policy: nn.Module | None = None,
) -> dict[str, float]:
    """One minibatch of the reference loop: clear grads, backward, (clip and) step; returns its stats."""
    optimizers.actor.zero_grad(set_to_none=True)
    optimizers.critic.zero_grad(set_to_none=True)
    stats = minibatch_backward(policy, critic, mb, cfg, act_steps, base_policy)
    if actor_step:
        if cfg.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(actor_parameters(policy), cfg.max_grad_norm)
        optimizers.actor.step()
    optimizers.critic.step()
    return stats


def ppo_update(
    policy: nn.Module,
    critic: nn.Module,
    buffer: RolloutBuffer,
    optimizers: PPOOptimizers,
    cfg: PPOConfig,
    itr: int,
    generator: torch.Generator | None = None,
    base_policy: nn.Module | None = None,
    update_actor: bool | None = None,
) -> dict[str, float]:
    """One iteration's PPO updates over a finalized buffer (see the module docstring).

    update_actor: whether the actor steps this iteration (rl.critic_warmup decides it in fine-tuning);
    None keeps the reference's rule itr >= n_critic_warmup_itr.

    Returns the minibatch statistics averaged over the minibatches run, plus approx_kl_last,
    n_minibatches, epochs (started), early_stopped, actor_updated and explained_variance
    (1 - Var(returns - values) / Var(returns), the reference's diagnostic).
    """
    actor_step = itr >= cfg.n_critic_warmup_itr if update_actor is None else update_actor
    sums: dict[str, float] = {}
    n_mb = 0
    epochs = 0
    stopped = False
    last_kl = float("nan")
    for _ in range(cfg.update_epochs):
        epochs += 1
        for mb in buffer.minibatches(cfg.batch_size, generator):
            stats = update_minibatch(policy, critic, mb, optimizers, cfg, buffer.act_steps, actor_step, base_policy)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            n_mb += 1
            last_kl = stats["approx_kl"]
            if cfg.target_kl is not None and last_kl > cfg.target_kl:
                stopped = True
                break
        if stopped:
            break
    out = {k: v / n_mb for k, v in sums.items()}
    out.update(
        approx_kl_last=last_kl,
        n_minibatches=float(n_mb),
        epochs=float(epochs),
        early_stopped=float(stopped),
        actor_updated=float(actor_step),
        explained_variance=explained_variance(buffer.values.cpu().numpy(), buffer.returns.cpu().numpy()),
        actor_lr=optimizers.actor.param_groups[0]["lr"],
        critic_lr=optimizers.critic.param_groups[0]["lr"],
    )
    return out

"""RL core of DPPO fine-tuning and of the Gaussian PPO baseline (pure torch/numpy, no environment).

Shape legend used by every module of this package:
    N   parallel environments (n_envs)
    T   environment steps per iteration (n_steps); one env step executes a chunk of Ta actions
    B   minibatch size
    K   denoising steps of the DDPM chain; K' the fine-tuned (last) denoising steps
    To  observation history (cond_steps), Do observation dimension
    Tp  predicted action chunk (horizon_steps), Ta executed chunk (act_steps), Da action dimension

Modules:
    returns         GAE and the running reward scaler
    dppo_loss       DPPO clipped surrogate over denoising transitions
    gaussian_ppo_loss  PPO loss of the Gaussian MLP baseline, and its sampler
    rollout_buffer  one iteration of rollouts, old log-probs / values, minibatching
    lr_schedule     cosine schedule with linear warm-up (reference CosineAnnealingWarmupRestarts)
    ppo_update      PPOConfig, optimizers and the update loop shared by both algorithms
"""

from dppo_robot.rl.dppo_loss import clip_coef_schedule, denoising_discount, dppo_loss
from dppo_robot.rl.gaussian_ppo_loss import gaussian_ppo_loss, sample_gaussian
from dppo_robot.rl.lr_schedule import CosineWarmupSchedule
from dppo_robot.rl.ppo_update import LRScheduleConfig, PPOConfig, PPOOptimizers, build_optimizers, ppo_update
from dppo_robot.rl.returns import RunningRewardScaler, firsts_from_dones, gae
from dppo_robot.rl.rollout_buffer import Minibatch, RolloutBuffer

__all__ = [
    "CosineWarmupSchedule",
    "LRScheduleConfig",
    "Minibatch",
    "PPOConfig",
    "PPOOptimizers",
    "RolloutBuffer",
    "RunningRewardScaler",
    "build_optimizers",
    "clip_coef_schedule",
    "denoising_discount",
    "dppo_loss",
    "firsts_from_dones",
    "gae",
    "gaussian_ppo_loss",
    "ppo_update",
    "sample_gaussian",
]

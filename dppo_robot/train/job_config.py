"""Typed configs of the training jobs, loaded strictly from YAML (see configs/ for per-task files).

Defaults are the reference implementation's robomimic state values where they exist
(pre-training: batch 256, lr 1e-4 -> 1e-5 cosine, weight decay 1e-6, EMA 0.995; fine-tuning:
see dppo_robot.rl.ppo_update.PPOConfig). CPU-sized runs override sizes in their YAML files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from dppo_robot.envs.task_config import TaskConfig
from dppo_robot.model.policy_config import PolicyConfig
from dppo_robot.rl.ppo_update import PPOConfig
from dppo_robot.train.device import DeviceName, check_device
from dppo_robot.train.rollout import CollectorSettings


@dataclass
class EvalSettings:
    """Periodic evaluation in simulation: deterministic sampling (DDIM eta 0 / DDPM floor 1e-3)."""

    every: int = 0  # evaluate every this many steps (pretrain) or iterations (finetune); 0: only at the end
    n_episodes: int = 20
    n_envs: int = 10  # parallel envs for evaluation
    n_workers: int = 0  # worker processes (0: in the main process)
    seed: int = 100_000  # evaluation episodes use seeds seed, seed + 1, ... (disjoint from training)

    def validate(self) -> None:
        if self.every < 0 or self.n_episodes < 1 or self.n_envs < 1 or self.n_workers < 0:
            raise ValueError("eval: every >= 0, n_episodes >= 1, n_envs >= 1, n_workers >= 0")


@dataclass
class PretrainConfig:
    """Behaviour cloning of a diffusion (denoising loss) or Gaussian (log-likelihood) policy."""

    run_dir: str  # checkpoints/, metrics and curves go here; an existing run resumes
    task: TaskConfig
    dataset: str  # train.npz in the reference layout (states/actions normalised)
    normalization: str  # normalization.npz written beside it
    max_n_episodes: int | None = None  # use only the first N demonstrations (null: all)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    seed: int = 0
    train_steps: int = 20_000  # gradient steps (the reference counts epochs; steps suit CPU budgets)
    batch_size: int = 256
    lr: float = 1e-4
    min_lr: float = 1e-5  # cosine decay over train_steps
    lr_warmup_steps: int = 0
    weight_decay: float = 1e-6
    ema_decay: float = 0.995
    ema_every: int = 10  # EMA update period in steps (reference update_ema_freq)
    ema_start_step: int = 0  # plain copies before this step (reference: epoch_start_ema 20)
    log_every: int = 100
    save_every: int = 2000
    torch_threads: int = 1
    device: DeviceName = "cpu"  # where the network trains (auto: cuda if available); data stays on the CPU
    eval: EvalSettings = field(default_factory=EvalSettings)

    def validate(self) -> None:
        if self.train_steps < 1 or self.batch_size < 1:
            raise ValueError("train_steps and batch_size must be >= 1")
        if not 0 < self.ema_decay < 1:
            raise ValueError("ema_decay must be in (0, 1)")
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr {self.min_lr} must be <= lr {self.lr}")
        if self.log_every < 1 or self.save_every < 1 or self.ema_every < 1:
            raise ValueError("log_every, save_every and ema_every must be >= 1")
        check_device(self.device)


@dataclass
class FinetuneConfig:
    """DPPO (diffusion) or Gaussian PPO fine-tuning from a pre-trained checkpoint."""

    run_dir: str
    task: TaskConfig
    checkpoint: str  # pre-trained dppo_robot checkpoint (EMA weights are used)
    algorithm: Literal["dppo", "gaussian_ppo"] = "dppo"
    seed: int = 0
    n_itr: int = 100  # PPO iterations
    n_envs: int = 50  # parallel training envs (N)
    # chunk steps per env per iteration (T), as the reference's n_steps counts them: env steps per
    # iteration = n_envs * n_steps * Ta (reference lift 50 x 300 x 4 = 60,000; square 50 x 400 x 4)
    n_steps: int = 300
    n_workers: int = 2  # env worker processes, or Ray actors with collector.backend ray (0: in the main process)
    collector: CollectorSettings = field(default_factory=CollectorSettings)  # process pool here, or Ray
    reset_at_iteration: bool = True  # every iteration starts fresh episodes (reference default)
    # diffusion sampler during fine-tuning (reference robomimic values)
    ft_denoising_steps: int = 10  # K' (DDPM K=20 robomimic; all 5 DDIM steps furniture)
    min_sampling_denoising_std: float = 0.1  # exploration std floor (0.04 furniture)
    min_logprob_denoising_std: float = 0.1
    randn_clip_value: float = 3.0
    final_action_clip_value: float | None = None  # reference: none (a clamp before the log-prob pins samples)
    # critic V(s): residual MLP with Mish as the reference
    critic_dims: list[int] = field(default_factory=lambda: [256, 256, 256])
    critic_residual: bool = True
    ppo: PPOConfig = field(default_factory=PPOConfig)
    save_every: int = 10  # iterations between checkpoints (the last one is always saved)
    torch_threads: int = 1
    device: DeviceName = "cpu"  # policy, critic, buffer and updates (auto: cuda if available); envs stay on the CPU
    step_timeout_s: float = 120.0
    eval: EvalSettings = field(default_factory=lambda: EvalSettings(every=10))

    def validate(self) -> None:
        if self.n_itr < 1 or self.n_envs < 1 or self.n_steps < 1:
            raise ValueError("n_itr, n_envs and n_steps must be >= 1")
        if self.n_workers < 0:
            raise ValueError("n_workers must be >= 0")
        if self.collector.backend == "ray" and self.n_workers < 1:
            raise ValueError("collector.backend ray needs n_workers >= 1 (one env actor per worker)")
        if self.ft_denoising_steps < 1:
            raise ValueError("ft_denoising_steps (K') must be >= 1")
        check_device(self.device)


@dataclass
class EvaluateConfig:
    """Evaluate a checkpoint or bundle in simulation."""

    task: TaskConfig
    policy: str  # dppo_robot checkpoint (.pt) or bundle directory
    out: str = "reports/evaluate"
    eval: EvalSettings = field(default_factory=lambda: EvalSettings(n_episodes=50))
    torch_threads: int = 1

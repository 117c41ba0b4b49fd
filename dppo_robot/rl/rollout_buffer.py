"""Storage of one PPO iteration: rollouts, old log-probs and values, advantages, minibatches.

Shapes:
    obs["state"]              [T, N, To, Do]          normalised observation history
    obs["images"][camera]     [T, N, To, C, H, W]     (pixel policies; stored as given, e.g. uint8)
    chains (DPPO)             [T, N, K'+1, Tp, Da]    x before the first fine-tuned step, then every output
    actions (Gaussian)        [T, N, Tp, Da]
    rewards, terminated, truncated, values, advantages, returns   [T, N]
    logprobs (DPPO)           [T, N, K', Tp, Da]      per element, under actor_ft at collection time
    logprobs (Gaussian)       [T, N, Tp, Da]          per element
    first0                    [N]                     envs reset right before step 0

Reference (irom-princeton/dppo agent/finetune/train_ppo_diffusion_agent.py, train_ppo_gaussian_agent.py):
- old log-probs and values are computed after collection, under no_grad, in chunks of
  logprob_batch_size (10000) env steps over the (T x N) flattening t * N + n;
- order of post-processing: values and log-probs, running reward scaling (with firsts), V of the
  observation after the last step, GAE with reward_scale_const applied to the (scaled) rewards;
- DPPO minibatches: one random permutation per epoch of the T*N*K' (env step x denoising step)
  pairs, cut into floor(total / batch_size) minibatches (the last partial one is skipped; a single
  minibatch of everything when total < batch_size); pair p maps to env step p // K' and denoising
  index p % K' (torch.unravel_index over (T*N, K')). Gaussian: the same over the T*N env steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from dppo_robot.model.diffusion import DiffusionPolicy, map_cond
from dppo_robot.rl.returns import RunningRewardScaler, firsts_from_dones, gae

if TYPE_CHECKING:
    from dppo_robot.rl.ppo_update import PPOConfig


@dataclass
class Minibatch:
    """One PPO minibatch; B = batch size. DPPO fills chains_prev/next and denoising_idx, Gaussian actions."""

    cond: dict
    old_logprobs: torch.Tensor  # [B, Tp, Da]
    advantages: torch.Tensor  # [B]
    returns: torch.Tensor  # [B]
    old_values: torch.Tensor  # [B]
    step_idx: torch.Tensor  # [B] flat env-step index t * N + n
    chains_prev: torch.Tensor | None = None  # [B, Tp, Da]
    chains_next: torch.Tensor | None = None  # [B, Tp, Da]
    denoising_idx: torch.Tensor | None = None  # [B] in [0, K')
    actions: torch.Tensor | None = None  # [B, Tp, Da]


class RolloutBuffer:
    """One iteration of N envs x T chunk steps. ft_denoising_steps > 0: DPPO chains; 0: Gaussian actions."""

    def __init__(
        self,
        n_steps: int,
        n_envs: int,
        obs_dim: int,
        cond_steps: int,
        horizon_steps: int,
        action_dim: int,
        act_steps: int,
        ft_denoising_steps: int = 0,
        image_shapes: dict[str, tuple[int, int, int]] | None = None,
        image_dtype: torch.dtype = torch.uint8,
        device: torch.device | str = "cpu",
    ) -> None:
        if not 1 <= act_steps <= horizon_steps:
            raise ValueError(f"act_steps (Ta={act_steps}) must be in [1, horizon_steps={horizon_steps}]")
        self.n_steps, self.n_envs = n_steps, n_envs
        self.horizon_steps, self.action_dim, self.act_steps = horizon_steps, action_dim, act_steps
        self.ft_denoising_steps = ft_denoising_steps
        self.device = torch.device(device)
        T, N, dev = n_steps, n_envs, self.device
        self.obs: dict = {"state": torch.zeros(T, N, cond_steps, obs_dim, device=dev)}
        if image_shapes:
            self.obs["images"] = {
                cam: torch.zeros(T, N, cond_steps, *shape, dtype=image_dtype, device=dev)
                for cam, shape in image_shapes.items()
            }
        if self.is_diffusion:
            kp = ft_denoising_steps
            self.chains = torch.zeros(T, N, kp + 1, horizon_steps, action_dim, device=dev)
            self.logprobs = torch.zeros(T, N, kp, horizon_steps, action_dim, device=dev)
        else:
            self.actions = torch.zeros(T, N, horizon_steps, action_dim, device=dev)
            self.logprobs = torch.zeros(T, N, horizon_steps, action_dim, device=dev)
        self.rewards = torch.zeros(T, N, dtype=torch.float64, device=dev)
        self.terminated = torch.zeros(T, N, device=dev)
        self.truncated = torch.zeros(T, N, device=dev)
        self.values = torch.zeros(T, N, device=dev)
        self.advantages = torch.zeros(T, N, device=dev)
        self.returns = torch.zeros(T, N, device=dev)
        self.scaled_rewards = torch.zeros(T, N, dtype=torch.float64, device=dev)
        self.reset()

    # ------------------------------------------------------------------ filling
    @property
    def is_diffusion(self) -> bool:
        return self.ft_denoising_steps > 0

    @property
    def full(self) -> bool:
        return self.step == self.n_steps

    def reset(self, first0: torch.Tensor | None = None) -> None:
        """Start a new iteration; first0 [N] marks envs reset right before step 0 (default: all)."""
        self.step = 0
        self.ready = False
        f = torch.ones(self.n_envs) if first0 is None else torch.as_tensor(first0, dtype=torch.float32)
        self.first0 = f.to(self.device)

    def add(
        self,
        cond: dict,
        reward: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        chain: torch.Tensor | None = None,
        actions: torch.Tensor | None = None,
    ) -> None:
        """Record env step `self.step`: the obs the chunk was sampled from, its chain [N, K'+1, Tp, Da]
        (DPPO) or actions [N, Tp, Da] (Gaussian), and the step's summed reward and end flags [N]."""
        if self.full:
            raise RuntimeError(f"buffer is full ({self.n_steps} steps); call reset() first")
        if self.is_diffusion and chain is None:
            raise ValueError("a DPPO buffer needs the chain of every step")
        if not self.is_diffusion and actions is None:
            raise ValueError("a Gaussian buffer needs the actions of every step")
        t = self.step
        self._write(self.obs, cond, t)
        if self.is_diffusion:
            self.chains[t] = chain
        else:
            self.actions[t] = actions
        dev = self.device
        self.rewards[t] = torch.as_tensor(reward, dtype=torch.float64, device=dev)
        self.terminated[t] = torch.as_tensor(terminated, dtype=torch.float32, device=dev)
        self.truncated[t] = torch.as_tensor(truncated, dtype=torch.float32, device=dev)
        self.step += 1

    def _write(self, store: dict, cond: dict, t: int) -> None:
        for k, v in store.items():
            if k not in cond:
                raise KeyError(f"observation is missing '{k}'")
            if isinstance(v, dict):
                self._write(v, cond[k], t)
            else:
                v[t] = torch.as_tensor(cond[k], device=self.device)

    @property
    def firsts(self) -> torch.Tensor:
        """[T, N]: 1 where a step starts an episode (first0, then terminated | truncated shifted by one)."""
        done = torch.maximum(self.terminated, self.truncated)
        f = firsts_from_dones(done, self.first0)
        return torch.as_tensor(f, dtype=torch.float32, device=self.device)

    def map_images(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Replace every camera's stored images [T, N, To, C, H, W] by fn(images) (same shape).

        The reference pixel agent augments (random shift, pad 4) the stored images once, after
        collection, so old log-probs, values and every update epoch see the same shifted images.
        """
        if "images" in self.obs:
            self.obs["images"] = {cam: fn(v) for cam, v in self.obs["images"].items()}

    # ------------------------------------------------------------------ post-processing
    def flat_cond(self) -> dict:
        """The observations flattened to [T*N, ...] (index t * N + n)."""
        return map_cond(self.obs, lambda v: v.flatten(0, 1))

    @torch.no_grad()
    def compute_values_and_logprobs(self, policy: nn.Module, critic: nn.Module, batch_size: int = 10000) -> None:
        """Critic values [T, N] and old per-element log-probs, in chunks of batch_size env steps."""
        self._check_full()
        cond = self.flat_cond()
        total = self.n_steps * self.n_envs
        values, logprobs = [], []
        if self.is_diffusion:
            if not isinstance(policy, DiffusionPolicy) or policy.ft_denoising_steps != self.ft_denoising_steps:
                raise ValueError("a DPPO buffer needs a DiffusionPolicy with the same ft_denoising_steps")
            samples = self.chains.flatten(0, 1)
        else:
            samples = self.actions.flatten(0, 1)
        for s in range(0, total, batch_size):
            c = map_cond(cond, lambda v, s=s: v[s : s + batch_size])
            x = samples[s : s + batch_size]
            values.append(critic(c).view(-1))
            if self.is_diffusion:
                logprobs.append(policy.chain_log_probs(c, x))
            else:
                mean, std = policy(c)
                logprobs.append(torch.distributions.Normal(mean, std).log_prob(x))
        self.values.copy_(torch.cat(values).view(self.n_steps, self.n_envs))
        self.logprobs.copy_(torch.cat(logprobs).view_as(self.logprobs))

    @torch.no_grad()
    def compute_advantages(
        self,
        next_values: torch.Tensor,
        gamma: float,
        gae_lambda: float,
        reward_scaler: RunningRewardScaler | None = None,
        reward_scale_const: float = 1.0,
    ) -> None:
        """Reward scaling (running scaler with firsts, then the constant) and GAE on terminated.

        next_values [N] = V(observation after the last step). Needs compute_values_and_logprobs first.
        """
        self._check_full()
        r = self.rewards
        if reward_scaler is not None:
            r = torch.as_tensor(reward_scaler(r.cpu().numpy(), self.firsts.cpu().numpy()), device=self.device)
        self.scaled_rewards.copy_(r * reward_scale_const)
        nv = torch.as_tensor(next_values, device=self.device).reshape(self.n_envs).to(self.values.dtype)
        adv, ret = gae(self.scaled_rewards, self.values, nv, self.terminated, gamma, gae_lambda)
        self.advantages.copy_(adv)
        self.returns.copy_(ret)
        self.ready = True

    @torch.no_grad()
    def finalize(
        self,
        policy: nn.Module,
        critic: nn.Module,
        next_cond: dict,
        cfg: PPOConfig,
        reward_scaler: RunningRewardScaler | None = None,
    ) -> None:
        """All post-processing of the reference, in its order, for the obs after the last step."""
        self.compute_values_and_logprobs(policy, critic, cfg.logprob_batch_size)
        next_values = critic(next_cond).view(-1)
        scaler = reward_scaler if cfg.reward_scale_running else None
        self.compute_advantages(next_values, cfg.gamma, cfg.gae_lambda, scaler, cfg.reward_scale_const)

    def _check_full(self) -> None:
        if not self.full:
            raise RuntimeError(f"buffer holds {self.step} of {self.n_steps} steps")

    # ------------------------------------------------------------------ sampling
    @property
    def n_samples(self) -> int:
        """Minibatch population: T*N*K' (env step x denoising step) pairs, or T*N env steps."""
        return self.n_steps * self.n_envs * max(1, self.ft_denoising_steps)

    def num_minibatches(self, batch_size: int) -> int:
        return max(1, self.n_samples // batch_size)

    def minibatches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[Minibatch]:
        """One epoch of minibatches from a fresh permutation (drawn on the generator's device, CPU by default)."""
        if not self.ready:
            raise RuntimeError("compute_advantages (or finalize) must run before minibatches")
        perm = torch.randperm(self.n_samples, generator=generator).to(self.device)
        cond = self.flat_cond()
        adv, ret, val = self.advantages.flatten(), self.returns.flatten(), self.values.flatten()
        kp = self.ft_denoising_steps
        if self.is_diffusion:
            # pair tables [T*N*K', Tp, Da] indexed by p = step * K' + k: one contiguous row gather per
            # minibatch instead of two-index gathers (same values)
            prev = self.chains[:, :, :-1].reshape(self.n_samples, self.horizon_steps, self.action_dim)
            nxt = self.chains[:, :, 1:].reshape(self.n_samples, self.horizon_steps, self.action_dim)
            lps = self.logprobs.reshape(self.n_samples, self.horizon_steps, self.action_dim)
        else:
            actions, lps = self.actions.flatten(0, 1), self.logprobs.flatten(0, 1)
        for b in range(self.num_minibatches(batch_size)):
            inds = perm[b * batch_size : (b + 1) * batch_size]
            if self.is_diffusion:
                step, k = inds // kp, inds % kp
                extra = {
                    "chains_prev": prev[inds],
                    "chains_next": nxt[inds],
                    "denoising_idx": k,
                    "old_logprobs": lps[inds],
                }
            else:
                step = inds
                extra = {"actions": actions[step], "old_logprobs": lps[step]}
            yield Minibatch(
                cond=map_cond(cond, lambda v, s=step: v[s]),
                advantages=adv[step],
                returns=ret[step],
                old_values=val[step],
                step_idx=step,
                **extra,
            )

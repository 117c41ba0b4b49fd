"""Environment-level returns: GAE over chunk steps and the running reward scaler.

Shapes (time-major, as the rollout buffer stores them):
    rewards, values, terminated, truncated, firsts   [T, N]
    next_values_at_end                              [N]   V(obs after the last step)
One env step is a whole executed chunk of Ta actions; its reward is the sum over the chunk, and
gamma (0.999) discounts per chunk, not per low-level action.

Reference behaviour reproduced here (irom-princeton/dppo, agent/finetune/train_ppo_*_agent.py and
util/reward_scaling.py):
- GAE cuts both the bootstrap and the lambda-recursion only on *terminated* steps
  (nonterminal = 1 - terminated[t]). For t < T-1 the next value is values[t+1], the value of the
  next observation stored in the buffer. On a *truncated* (time-limit) step the vectorised env has
  already auto-reset, so the reference bootstraps from V(first observation of the next episode) and
  lets the lambda-recursion run across the boundary. This quirk is kept on purpose (pass
  terminated, not terminated | truncated); only the reward scaler sees truncations, through firsts.
- The reward scaler divides rewards by the running std of a discounted return sum (gamma 0.99,
  no mean subtraction), clipped to +-10; one scalar statistic over all envs (per_env=False). The
  statistic is updated with the current batch before it is applied. Its running-variance update
  divides M2 by (count - 1) with the initial pseudo-count 1e-4, exactly as the reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values_at_end: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation, the reference's backward recursion.

    rewards, values, dones [T, N] (dones = terminated only, see the module docstring), and
    next_values_at_end [N]. Rewards must already carry any reward scaling. Computed in float64
    like the reference's numpy arrays; returns (advantages, returns) [T, N] in values' dtype, with
    returns = advantages + values.
    """
    if rewards.shape != values.shape or rewards.shape != dones.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)}, values {tuple(values.shape)}, dones {tuple(dones.shape)}")
    if next_values_at_end.shape != rewards.shape[1:]:
        raise ValueError(
            f"next_values_at_end must be [N]={tuple(rewards.shape[1:])}, got {tuple(next_values_at_end.shape)}"
        )
    r = rewards.double()
    v = values.double()
    nonterminal = 1.0 - dones.double()
    adv = torch.zeros_like(r)
    last = torch.zeros_like(r[0])
    n_steps = r.shape[0]
    for t in reversed(range(n_steps)):
        next_v = next_values_at_end.double() if t == n_steps - 1 else v[t + 1]
        delta = r[t] + gamma * next_v * nonterminal[t] - v[t]
        last = delta + gamma * lam * nonterminal[t] * last
        adv[t] = last
    return adv.to(values.dtype), (adv + v).to(values.dtype)


def firsts_from_dones(done: torch.Tensor | np.ndarray, first0: torch.Tensor | np.ndarray) -> np.ndarray:
    """firsts [T, N]: 1 where step t starts an episode.

    done [T, N] is terminated | truncated; first0 [N] marks envs reset right before step 0 (all
    ones when the envs are reset at every iteration, the reference default reset_at_iteration).
    firsts[0] = first0, firsts[t] = done[t-1], the reference's firsts_trajs[:-1].
    """
    done = _np(done).astype(np.float64)
    out = np.empty_like(done)
    out[0] = _np(first0)
    out[1:] = done[:-1]
    return out


class RunningMeanStd:
    """Running mean and variance with an initial pseudo-count (reference util/reward_scaling.py)."""

    def __init__(self, epsilon: float = 1e-4, shape: tuple[int, ...] = ()) -> None:
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = float(epsilon)

    def update(self, x: np.ndarray) -> None:
        self.update_from_moments(np.mean(x, axis=0), np.var(x, axis=0), x.shape[0])

    def update_from_moments(self, batch_mean: np.ndarray, batch_var: np.ndarray, batch_count: int) -> None:
        delta = batch_mean - self.mean
        tot = self.count + batch_count
        m2 = self.var * self.count + batch_var * batch_count + delta**2 * self.count * batch_count / tot
        self.mean = self.mean + delta * batch_count / tot
        self.var = m2 / (tot - 1)  # the reference divides by (count - 1), not count
        self.count = tot


class RunningRewardScaler:
    """Divide rewards by the running std of the discounted return sum, then clip.

    __call__(rewards [T, N], firsts [T, N]) -> scaled rewards [T, N] (numpy float64; torch tensors
    are accepted and returned as tensors). The per-env running return carries over between calls,
    reset where firsts is 1: ret_t = r_t + (1 - first_t) * gamma * ret_{t-1}.
    """

    def __init__(
        self, n_envs: int, gamma: float = 0.99, clip: float = 10.0, epsilon: float = 1e-8, per_env: bool = False
    ) -> None:
        self.n_envs = n_envs
        self.gamma = gamma
        self.clip = clip
        self.epsilon = epsilon
        self.per_env = per_env
        self.ret_rms = RunningMeanStd(shape=(n_envs,) if per_env else ())
        self.ret = np.zeros(n_envs, dtype=np.float64)

    def __call__(self, rewards: Any, firsts: Any) -> Any:
        r = _np(rewards).astype(np.float64)
        f = _np(firsts).astype(np.float64)
        if r.ndim != 2 or r.shape[1] != self.n_envs or f.shape != r.shape:
            raise ValueError(f"rewards and firsts must be [T, {self.n_envs}], got {r.shape} and {f.shape}")
        rets = np.zeros_like(r)
        prev = self.ret
        for t in range(r.shape[0]):
            prev = rets[t] = r[t] + (1.0 - f[t]) * self.gamma * prev
        self.ret = rets[-1].copy()
        self.ret_rms.update(rets if self.per_env else rets.reshape(-1))
        out = self.transform(r)
        if isinstance(rewards, torch.Tensor):
            return torch.as_tensor(out, dtype=rewards.dtype, device=rewards.device)
        return out

    def transform(self, rewards: np.ndarray) -> np.ndarray:
        return np.clip(rewards / np.sqrt(self.ret_rms.var + self.epsilon), -self.clip, self.clip)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.ret_rms.var + self.epsilon)

    def state_dict(self) -> dict:
        """float64 tensors (exact, and loadable by torch.load with weights_only=True)."""
        return {
            "mean": torch.tensor(np.array(self.ret_rms.mean, np.float64)),
            "var": torch.tensor(np.array(self.ret_rms.var, np.float64)),
            "count": float(self.ret_rms.count),
            "ret": torch.tensor(self.ret.copy()),
        }

    def load_state_dict(self, state: dict) -> None:
        self.ret_rms.mean = _np(state["mean"]).astype(np.float64).copy()
        self.ret_rms.var = _np(state["var"]).astype(np.float64).copy()
        self.ret_rms.count = float(state["count"])
        ret = _np(state["ret"]).astype(np.float64).copy()
        if ret.shape != (self.n_envs,):
            raise ValueError(f"reward scaler state has {ret.shape[0]} envs, this scaler {self.n_envs}")
        self.ret = ret


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)

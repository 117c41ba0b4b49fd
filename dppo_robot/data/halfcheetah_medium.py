"""A "medium" HalfCheetah-v5 dataset made here, in place of D4RL halfcheetah-medium-v2.

The reference pre-trains its HalfCheetah policies on D4RL medium data (rollouts of a SAC policy
stopped at about a third of expert return, ~4,770 per 1000-step episode). D4RL cannot be
fetched here, so this module makes the equivalent from scratch:

1. `train`: Gaussian PPO from a randomly initialised policy (CleanRL-style: separate tanh MLP
   actor and critic, state-independent log-std, running observation and return normalisation,
   GAE, clipped surrogate) on HalfCheetah-v5, stopped once the mean return of the last
   training episodes reaches a target (the "medium" level) or the step budget runs out;
2. `collect`: rollouts of that policy (stochastic, as D4RL's) written as train.npz (states,
   actions, traj_lengths; normalised to [-1, 1]) and normalization.npz in the reference layout.

Shapes: N envs, T steps per rollout, obs [N, 17], actions [N, 6] (env units, [-1, 1]).
Run: python -m dppo_robot.data.halfcheetah_medium train --out DIR ...; ... collect --policy DIR/policy.pt
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

OBS_DIM, ACT_DIM = 17, 6


@dataclass
class MediumPPOConfig:
    """PPO-from-scratch settings (CleanRL ppo_continuous_action defaults unless noted)."""

    seed: int = 0
    total_steps: int = 2_000_000  # env-step budget
    target_return: float = 3500.0  # stop once the mean of the last `target_window` episodes reaches it
    target_window: int = 16
    torch_threads: int = 1
    n_envs: int = 16  # CleanRL: 1 env x 2048 steps; 16 x 128 amortises the policy calls on CPU
    n_steps: int = 128  # per env per rollout (batch 2048, as CleanRL)
    hidden: int = 64  # CleanRL
    lr: float = 3e-4  # linearly annealed to 0 over total_steps
    gamma: float = 0.99
    gae_lambda: float = 0.95
    update_epochs: int = 10
    minibatch: int = 64  # CleanRL
    clip: float = 0.2
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    log_std_init: float = -0.5
    max_episode_steps: int = 1000


class RunningMeanStd:
    """Running mean / variance (parallel-algorithm update) of an array stream."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = 1e-4

    def update(self, x: np.ndarray) -> None:
        bm, bv, bc = x.mean(0), x.var(0), x.shape[0]
        d = bm - self.mean
        tot = self.count + bc
        self.mean = self.mean + d * bc / tot
        self.var = (self.var * self.count + bv * bc + d**2 * self.count * bc / tot) / tot
        self.count = tot


class MediumPolicy(nn.Module):
    """Gaussian actor (tanh MLP mean, state-independent log-std) and critic over normalised obs."""

    def __init__(self, hidden: int = 64, log_std_init: float = -0.5) -> None:
        super().__init__()

        def mlp(out: int, gain: float) -> nn.Sequential:
            layers = [
                nn.Linear(OBS_DIM, hidden),
                nn.Tanh(),
                nn.Linear(hidden, hidden),
                nn.Tanh(),
                nn.Linear(hidden, out),
            ]
            for i, m in enumerate(x for x in layers if isinstance(x, nn.Linear)):
                nn.init.orthogonal_(m.weight, gain if i == 2 else np.sqrt(2))
                nn.init.zeros_(m.bias)
            return nn.Sequential(*layers)

        self.actor = mlp(ACT_DIM, 0.01)
        self.critic = mlp(1, 1.0)
        self.log_std = nn.Parameter(torch.full((ACT_DIM,), log_std_init))
        self.register_buffer("obs_mean", torch.zeros(OBS_DIM, dtype=torch.float64))
        self.register_buffer("obs_var", torch.ones(OBS_DIM, dtype=torch.float64))

    def norm(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw obs [B, 17] -> normalised, clipped to +-10 (the running statistics are buffers)."""
        return ((obs - self.obs_mean) / torch.sqrt(self.obs_var + 1e-8)).clamp(-10, 10).float()

    def dist(self, obs_n: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.actor(obs_n), self.log_std.exp().expand(obs_n.shape[0], -1))

    @torch.no_grad()
    def act(self, obs: np.ndarray, stochastic: bool, gen: torch.Generator | None = None) -> np.ndarray:
        """Raw obs [B, 17] -> env actions [B, 6] clipped to [-1, 1]."""
        o = self.norm(torch.as_tensor(obs, dtype=torch.float64))
        mean = self.actor(o)
        if stochastic:
            mean = mean + self.log_std.exp() * torch.randn(mean.shape, generator=gen)
        return mean.clamp(-1, 1).numpy()


def make_env():
    from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

    return HalfCheetahEnv(frame_skip=5)


def train(cfg: MediumPPOConfig, out: str | Path, log=print) -> dict:
    """PPO from scratch until the target return; writes out/policy.pt and out/train.jsonl."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    envs = [make_env() for _ in range(cfg.n_envs)]
    obs = np.stack([e.reset(seed=int(rng.integers(2**31 - 1)))[0] for e in envs])
    ep_ret, ep_len = np.zeros(cfg.n_envs), np.zeros(cfg.n_envs, int)
    obs_rms, ret_rms, disc_ret = RunningMeanStd((OBS_DIM,)), RunningMeanStd(), np.zeros(cfg.n_envs)
    pol = MediumPolicy(cfg.hidden, cfg.log_std_init)
    opt = torch.optim.Adam(pol.parameters(), lr=cfg.lr, eps=1e-5)
    T, N = cfg.n_steps, cfg.n_envs
    finished: list[float] = []
    steps, t0, itr = 0, time.monotonic(), 0
    with open(out / "train.jsonl", "w") as logf:
        reached = False
        while steps < cfg.total_steps:
            frac = 1.0 - steps / cfg.total_steps
            opt.param_groups[0]["lr"] = cfg.lr * frac
            b_obs = np.zeros((T, N, OBS_DIM))
            b_act = np.zeros((T, N, ACT_DIM), np.float32)
            b_logp, b_val = np.zeros((T, N), np.float32), np.zeros((T, N), np.float32)
            b_rew, b_done = np.zeros((T, N), np.float32), np.zeros((T, N), np.float32)
            for t in range(T):
                obs_rms.update(obs)
                pol.obs_mean[:] = torch.as_tensor(obs_rms.mean)
                pol.obs_var[:] = torch.as_tensor(obs_rms.var)
                with torch.no_grad():
                    o = pol.norm(torch.as_tensor(obs))
                    d = pol.dist(o)
                    a = d.sample()
                    b_logp[t] = d.log_prob(a).sum(-1).numpy()
                    b_val[t] = pol.critic(o).squeeze(-1).numpy()
                b_obs[t], b_act[t] = o.numpy(), a.numpy()
                a_env = a.clamp(-1, 1).numpy()
                rew = np.zeros(N)
                for i, e in enumerate(envs):
                    ob, r, term, _, _ = e.step(a_env[i].astype(np.float64))
                    rew[i] = r
                    ep_ret[i] += r
                    ep_len[i] += 1
                    if term or ep_len[i] >= cfg.max_episode_steps:
                        finished.append(float(ep_ret[i]))
                        ep_ret[i], ep_len[i] = 0.0, 0
                        b_done[t, i] = 1.0
                        ob, _ = e.reset(seed=int(rng.integers(2**31 - 1)))
                    obs[i] = ob
                disc_ret = disc_ret * cfg.gamma + rew
                ret_rms.update(disc_ret)
                disc_ret[b_done[t] > 0] = 0.0
                b_rew[t] = np.clip(rew / np.sqrt(ret_rms.var + 1e-8), -10, 10)
                steps += N
            with torch.no_grad():
                next_val = pol.critic(pol.norm(torch.as_tensor(obs))).squeeze(-1).numpy()
            # GAE; a truncated episode bootstraps nothing (as CleanRL: HalfCheetah only truncates)
            adv = np.zeros((T, N), np.float32)
            last = np.zeros(N, np.float32)
            for t in reversed(range(T)):
                nv = next_val if t == T - 1 else b_val[t + 1]
                nonterm = 1.0 - b_done[t]
                delta = b_rew[t] + cfg.gamma * nv * nonterm - b_val[t]
                last = delta + cfg.gamma * cfg.gae_lambda * nonterm * last
                adv[t] = last
            ret = adv + b_val
            f_obs = torch.as_tensor(b_obs.reshape(T * N, OBS_DIM), dtype=torch.float32)
            f_act = torch.as_tensor(b_act.reshape(T * N, ACT_DIM))
            f_logp, f_adv, f_ret = (torch.as_tensor(x.reshape(-1)) for x in (b_logp, adv, ret))
            clipfracs, kls = [], []
            for _ in range(cfg.update_epochs):
                perm = torch.randperm(T * N)
                for s in range(0, T * N, cfg.minibatch):
                    idx = perm[s : s + cfg.minibatch]
                    d = pol.dist(f_obs[idx])
                    logp = d.log_prob(f_act[idx]).sum(-1)
                    ratio = (logp - f_logp[idx]).exp()
                    a_mb = f_adv[idx]
                    a_mb = (a_mb - a_mb.mean()) / (a_mb.std() + 1e-8)
                    pg = torch.max(-a_mb * ratio, -a_mb * ratio.clamp(1 - cfg.clip, 1 + cfg.clip)).mean()
                    v = pol.critic(f_obs[idx]).squeeze(-1)
                    vloss = 0.5 * ((v - f_ret[idx]) ** 2).mean()
                    loss = pg + cfg.vf_coef * vloss
                    opt.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(pol.parameters(), cfg.max_grad_norm)
                    opt.step()
                    with torch.no_grad():
                        kls.append(float(((ratio - 1) - (logp - f_logp[idx])).mean()))
                        clipfracs.append(float(((ratio - 1).abs() > cfg.clip).float().mean()))
            itr += 1
            recent = finished[-cfg.target_window :]
            row = {
                "itr": itr,
                "env_steps": steps,
                "wall_s": round(time.monotonic() - t0, 1),
                "episodes": len(finished),
                "recent_return": float(np.mean(recent)) if recent else float("nan"),
                "approx_kl": float(np.mean(kls)),
                "clip_fraction": float(np.mean(clipfracs)),
                "log_std_mean": float(pol.log_std.detach().mean()),
            }
            logf.write(json.dumps(row) + "\n")
            logf.flush()
            if itr % 20 == 0:
                log(f"itr {itr} steps {steps} return(last {len(recent)}) {row['recent_return']:.0f} {row['wall_s']} s")
                torch.save({"state_dict": pol.state_dict(), "config": asdict(cfg), "row": row}, out / "policy.pt")
            if len(recent) >= cfg.target_window and row["recent_return"] >= cfg.target_return:
                reached = True
                break
    torch.save({"state_dict": pol.state_dict(), "config": asdict(cfg), "row": row}, out / "policy.pt")
    summary = {**row, "target_return": cfg.target_return, "reached_target": reached}
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2))
    for e in envs:
        e.close()
    return summary


def load_medium_policy(path: str | Path) -> MediumPolicy:
    ck = torch.load(path, map_location="cpu", weights_only=False)
    pol = MediumPolicy(ck["config"]["hidden"], ck["config"]["log_std_init"])
    pol.load_state_dict(ck["state_dict"])
    return pol.eval()


def rollouts(pol: MediumPolicy, n_episodes: int, seed: int, stochastic: bool, max_steps: int = 1000):
    """n_episodes full episodes -> (states [E*T, 17], actions [E*T, 6], lengths [E], returns [E])."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    envs = [make_env() for _ in range(n_episodes)]
    obs = np.stack([e.reset(seed=int(rng.integers(2**31 - 1)))[0] for e in envs])
    S = np.zeros((n_episodes, max_steps, OBS_DIM), np.float32)
    A = np.zeros((n_episodes, max_steps, ACT_DIM), np.float32)
    R = np.zeros(n_episodes)
    for t in range(max_steps):
        a = pol.act(obs, stochastic, gen)
        S[:, t], A[:, t] = obs, a
        for i, e in enumerate(envs):
            obs[i], r, _, _, _ = e.step(a[i].astype(np.float64))
            R[i] += r
    for e in envs:
        e.close()
    return S.reshape(-1, OBS_DIM), A.reshape(-1, ACT_DIM), np.full(n_episodes, max_steps), R


def collect(policy: str | Path, n_episodes: int, seed: int, out: str | Path, stochastic: bool = True) -> dict:
    """Write out/train.npz and out/normalization.npz (reference layout) from policy rollouts."""
    from dppo_robot.data.dataset import (
        Dataset,
        fit_normalization,
        normalize_dataset,
        save_dataset,
        save_normalization_npz,
    )

    torch.set_num_threads(1)
    pol = load_medium_policy(policy)
    S, A, L, R = rollouts(pol, n_episodes, seed, stochastic)
    raw = Dataset(S, A, L)
    norm = fit_normalization(raw)
    ds = normalize_dataset(raw, norm)
    out = Path(out)
    save_dataset(out / "train.npz", ds.states, ds.actions, ds.traj_lengths)
    save_normalization_npz(out / "normalization.npz", norm)
    lo, hi = np.percentile(R, [2.5, 97.5]) if len(R) > 1 else (R[0], R[0])
    rep = {
        "source": "HalfCheetah-v5 rollouts of the PPO-from-scratch medium policy (replaces D4RL halfcheetah-medium-v2)",
        "policy": str(policy),
        "stochastic": stochastic,
        "episodes": int(n_episodes),
        "steps": int(L.sum()),
        "mean_return": float(R.mean()),
        "std_return": float(R.std(ddof=1)) if len(R) > 1 else 0.0,
        "return_range_95": [float(lo), float(hi)],
        "seed": seed,
    }
    (out / "demos_report.json").write_text(json.dumps(rep, indent=2))
    return rep


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dppo_robot.data.halfcheetah_medium", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="PPO from scratch to the medium return")
    t.add_argument("--out", required=True)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--total-steps", type=int, default=MediumPPOConfig.total_steps)
    t.add_argument("--target-return", type=float, default=MediumPPOConfig.target_return)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--n-envs", type=int, default=MediumPPOConfig.n_envs)
    t.add_argument("--minibatch", type=int, default=MediumPPOConfig.minibatch)
    t.add_argument("--hidden", type=int, default=MediumPPOConfig.hidden)
    c = sub.add_parser("collect", help="rollouts of the medium policy as train.npz + normalization.npz")
    c.add_argument("--policy", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--episodes", type=int, default=50)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--deterministic", action="store_true", help="record the mean action (default: sampled)")
    a = p.parse_args(argv)
    if a.cmd == "train":
        cfg = MediumPPOConfig(
            torch_threads=a.threads,
            seed=a.seed,
            total_steps=a.total_steps,
            target_return=a.target_return,
            n_envs=a.n_envs,
            minibatch=a.minibatch,
            hidden=a.hidden,
        )
        s = train(cfg, a.out)
        print(json.dumps(s))
    else:
        print(json.dumps(collect(a.policy, a.episodes, a.seed, a.out, not a.deterministic)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

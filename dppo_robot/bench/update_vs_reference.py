"""`python -m dppo_robot.bench.update_vs_reference`: DPPO update samples/s, ours vs the reference's.

Both implementations update the same network (the square MLP of the reference config
cfg/robomimic/finetune/square/ft_ppo_diffusion_mlp.yaml: DiffusionMLP [1024]x3 residual,
time_dim 32, cond_mlp [512, 64], DDPM K=20 with K'=10; critic [256]x3 residual Mish) from the
same weights, on the same buffer of exploration chains (the reference's 400 chunk steps x 50
envs by default; sampled by our policy, old log-probs and advantages from our finalize).

One timed step is one minibatch of B (env step x denoising step) pairs: gathering it from the
buffer, the loss, backward, and the AdamW steps of actor_ft and critic. Ours is
dppo_robot.rl.ppo_update.update_minibatch (the body of ppo_update's loop) on
RolloutBuffer.minibatches; one row per PPOConfig.cpu_chunk_rows value asked for. The reference's
is the loop body of its agent/finetune/train_ppo_diffusion_agent.py around PPODiffusion.loss
(re-typed here without its logging; the reference's code itself is imported, not copied). The
steps alternate (ours..., reference, ours..., reference, ...) in one process at
torch.set_num_threads(threads); the first round is an untimed warm-up. samples/s is
B / median wall seconds per minibatch; samples per CPU second (process time, all threads) is
reported beside it because wall time on a shared machine includes other processes' load.

Before timing, both losses are evaluated on one identical minibatch with identical weights; the
pg_loss / v_loss / approx_kl differences are reported (the two do the same math on the same net).

The reference is imported from a work tree of irom-princeton/dppo given by --reference (its
model/ package imports einops; --ref-pythonpath adds a directory where einops is installed).
Without --reference only ours is timed. Writes JSON and prints a table.

Shapes: buffer T x N env steps, chains [T, N, K'+1, Tp, Da]; minibatch B pairs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from dppo_robot.bench.configs import get_config
from dppo_robot.bench.machine_floor import OtherLoad, cpu_model, torch_threads
from dppo_robot.model.diffusion import DiffusionPolicy
from dppo_robot.model.policy_config import PolicyConfig
from dppo_robot.model.policy_factory import build_critic
from dppo_robot.rl.dppo_loss import dppo_loss
from dppo_robot.rl.ppo_update import PPOConfig, PPOOptimizers, build_optimizers, update_minibatch
from dppo_robot.rl.returns import RunningRewardScaler
from dppo_robot.rl.rollout_buffer import RolloutBuffer

DEFAULT_OUT = Path("reports/bench/update_vs_reference.json")
CRITIC_DIMS = [256, 256, 256]  # reference square config: critic mlp_dims, residual, Mish


def _ppo_config(batch_size: int) -> PPOConfig:
    """Reference square values; target_kl off so every pass runs all its minibatches."""
    return PPOConfig(
        update_epochs=1, batch_size=batch_size, n_critic_warmup_itr=0, target_kl=None, actor_lr=1e-4, critic_lr=1e-3
    )


def build_ours(config: str) -> tuple[DiffusionPolicy, torch.nn.Module, PolicyConfig]:
    """Our policy (seeded weights, actor_ft perturbed) and a seeded critic."""
    bc = get_config(config)
    policy = bc.build()
    if policy.ft_denoising_steps == 0:
        policy.enable_finetuning(policy.n_steps)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(bc.seed + 2)
        critic = build_critic(bc.policy, CRITIC_DIMS, residual_style=True)
    return policy, critic, bc.policy


def fill_buffer(
    policy: DiffusionPolicy,
    critic: torch.nn.Module,
    pc: PolicyConfig,
    n_envs: int,
    n_steps: int,
    cfg: PPOConfig,
    seed: int = 0,
) -> RolloutBuffer:
    """A finalised buffer of the policy's own exploration chains on random normalised observations."""
    kp = policy.ft_denoising_steps
    buf = RolloutBuffer(n_steps, n_envs, pc.obs_dim, pc.cond_steps, pc.horizon_steps, pc.action_dim, pc.act_steps, kp)
    g = torch.Generator().manual_seed(seed)
    buf.reset()
    with torch.no_grad():
        for _ in range(n_steps):
            cond = {"state": torch.randn(n_envs, pc.cond_steps, pc.obs_dim, generator=g)}
            chain = policy.sample(cond, "explore", generator=g, return_chain=True).chain
            rew = (torch.rand(n_envs, generator=g) < 0.1).float()
            buf.add(cond, rew, torch.zeros(n_envs), torch.zeros(n_envs), chain=chain)
        nxt = {"state": torch.randn(n_envs, pc.cond_steps, pc.obs_dim, generator=g)}
        buf.finalize(policy, critic, nxt, cfg, RunningRewardScaler(n_envs))
    return buf


# ----------------------------------------------------------------------------- reference
def import_reference(path: Path, extra_paths: list[str]) -> Any:
    """The reference's model package from a work tree (raises with a one-line reason)."""
    root = Path(path)
    if not (root / "model" / "diffusion" / "diffusion_ppo.py").is_file():
        raise SystemExit(f"--reference {root}: no model/diffusion/diffusion_ppo.py there (a dppo work tree?)")
    for p in [*extra_paths, str(root)]:
        if p not in sys.path:
            sys.path.insert(0, p)
    try:
        from model.common.critic import CriticObs  # type: ignore[import-not-found]
        from model.diffusion.diffusion_ppo import PPODiffusion  # type: ignore[import-not-found]
        from model.diffusion.mlp_diffusion import DiffusionMLP  # type: ignore[import-not-found]
    except ModuleNotFoundError as e:
        raise SystemExit(
            f"--reference {root}: importing its model package needs '{e.name}' "
            "(pip install it somewhere and pass --ref-pythonpath DIR)"
        ) from e
    return PPODiffusion, DiffusionMLP, CriticObs


def build_reference(
    classes: Any, policy: DiffusionPolicy, critic: torch.nn.Module, pc: PolicyConfig, cfg: PPOConfig
) -> torch.nn.Module:
    """The reference PPODiffusion of the same network, loaded with our weights (names match)."""
    PPODiffusion, DiffusionMLP, CriticObs = classes
    d = pc.denoiser
    actor = DiffusionMLP(
        action_dim=pc.action_dim,
        horizon_steps=pc.horizon_steps,
        cond_dim=pc.obs_dim * pc.cond_steps,
        time_dim=d.time_dim,
        mlp_dims=list(d.mlp_dims),
        cond_mlp_dims=list(d.cond_mlp_dims),
        residual_style=d.residual_style,
    )
    ref_critic = CriticObs(cond_dim=pc.obs_dim * pc.cond_steps, mlp_dims=list(CRITIC_DIMS), residual_style=True)
    df = pc.diffusion
    model = PPODiffusion(
        gamma_denoising=cfg.gamma_denoising,
        clip_ploss_coef=cfg.clip_ploss_coef,
        clip_ploss_coef_base=cfg.clip_ploss_coef_base,
        clip_ploss_coef_rate=cfg.clip_ploss_coef_rate,
        actor=actor,
        critic=ref_critic,
        ft_denoising_steps=policy.ft_denoising_steps,
        min_sampling_denoising_std=df.min_sampling_denoising_std,
        min_logprob_denoising_std=df.min_logprob_denoising_std,
        randn_clip_value=df.randn_clip_value,
        horizon_steps=pc.horizon_steps,
        obs_dim=pc.obs_dim,
        action_dim=pc.action_dim,
        denoising_steps=df.denoising_steps,
        device="cpu",
    )
    model.actor.load_state_dict(policy.actor.state_dict())
    model.actor_ft.load_state_dict(policy.actor_ft.state_dict())
    model.critic.load_state_dict(critic.state_dict())
    return model


class ReferenceUpdate:
    """The reference agent's minibatch loop (train_ppo_diffusion_agent.py) over our buffer's data."""

    def __init__(self, model: torch.nn.Module, buf: RolloutBuffer, cfg: PPOConfig) -> None:
        self.model, self.cfg = model, cfg
        self.actor_opt = torch.optim.AdamW(model.actor_ft.parameters(), lr=cfg.actor_lr, weight_decay=0)
        self.critic_opt = torch.optim.AdamW(model.critic.parameters(), lr=cfg.critic_lr, weight_decay=0)
        self.n_env_steps = buf.n_steps * buf.n_envs
        self.obs_k = {"state": buf.obs["state"].flatten(0, 1).clone()}
        self.chains_k = buf.chains.flatten(0, 1).clone()
        self.returns_k = buf.returns.flatten().clone()
        self.values_k = buf.values.flatten().clone()
        self.advantages_k = buf.advantages.flatten().clone()
        self.logprobs_k = buf.logprobs.flatten(0, 1).clone()
        self.reward_horizon = buf.act_steps

    def minibatch(self, inds_b: torch.Tensor) -> tuple:
        batch_inds_b, denoising_inds_b = torch.unravel_index(inds_b, (self.n_env_steps, self.model.ft_denoising_steps))
        return (
            {"state": self.obs_k["state"][batch_inds_b]},
            self.chains_k[batch_inds_b, denoising_inds_b],
            self.chains_k[batch_inds_b, denoising_inds_b + 1],
            denoising_inds_b,
            self.returns_k[batch_inds_b],
            self.values_k[batch_inds_b],
            self.advantages_k[batch_inds_b],
            self.logprobs_k[batch_inds_b, denoising_inds_b],
        )

    def minibatches(self, generator: torch.Generator) -> Iterator[torch.Tensor]:
        """The index sets of one epoch (inds_k cut into total // batch_size minibatches)."""
        total = self.n_env_steps * self.model.ft_denoising_steps
        inds_k = torch.randperm(total, generator=generator)
        for b in range(max(1, total // self.cfg.batch_size)):
            yield inds_k[b * self.cfg.batch_size : (b + 1) * self.cfg.batch_size]

    def update(self, inds_b: torch.Tensor) -> None:
        """Gather, loss, backward and both optimizer steps of one minibatch (the agent's loop body)."""
        pg_loss, entropy_loss, v_loss, *_, bc_loss, _ = self.model.loss(
            *self.minibatch(inds_b), use_bc_loss=False, reward_horizon=self.reward_horizon
        )
        loss = pg_loss + entropy_loss * self.cfg.ent_coef + v_loss * self.cfg.vf_coef + bc_loss * 0.0
        self.actor_opt.zero_grad()
        self.critic_opt.zero_grad()
        loss.backward()
        self.actor_opt.step()
        self.critic_opt.step()


def loss_agreement(
    policy: DiffusionPolicy,
    critic: torch.nn.Module,
    ref: ReferenceUpdate,
    buf: RolloutBuffer,
    cfg: PPOConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """|ours - reference| of pg_loss, v_loss and approx_kl on one identical minibatch (same weights)."""
    inds = torch.randperm(ref.n_env_steps * policy.ft_denoising_steps, generator=generator)[: cfg.batch_size]
    obs, prev, nxt, k, ret, val, adv, lp = ref.minibatch(inds)
    _, stats = dppo_loss(policy, obs, prev, nxt, k, lp, adv, ret, val, critic, cfg, buf.act_steps)
    pg, _, v, _, kl, *_ = ref.model.loss(obs, prev, nxt, k, ret, val, adv.clone(), lp, reward_horizon=buf.act_steps)
    pg, v = pg.item(), v.item()
    return {
        "pg_loss_abs_diff": abs(stats["pg_loss"] - pg),
        "v_loss_abs_diff": abs(stats["v_loss"] - v),
        "approx_kl_abs_diff": abs(stats["approx_kl"] - float(kl)),
        "v_loss": stats["v_loss"],
    }


# ----------------------------------------------------------------------------- timing
def _forever(make: Callable[[], Iterator]) -> Iterator:
    """Minibatches across epochs (a fresh permutation whenever one runs out)."""
    while True:
        yield from make()


def _timed(fn: Callable[[], None]) -> tuple[float, float]:
    """(wall s, process CPU s) of fn()."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def measure(
    config: str = "square_mlp",
    batch_size: int = 10_000,
    minibatches: int = 6,
    threads: int = 2,
    n_envs: int = 50,
    n_steps: int = 400,
    reference: Path | None = None,
    ref_pythonpath: list[str] | None = None,
    chunk_rows: list[int] | None = None,
) -> dict:
    """Per-minibatch times of ours (one row per cpu_chunk_rows value) and the reference's, interleaved."""
    chunk_rows = chunk_rows if chunk_rows else [PPOConfig().cpu_chunk_rows]
    with torch_threads(threads):
        cfg = _ppo_config(batch_size)
        policy, critic, pc = build_ours(config)
        kp = policy.ft_denoising_steps
        n_steps = max(n_steps, math.ceil(batch_size / (n_envs * kp)))
        buf = fill_buffer(policy, critic, pc, n_envs, n_steps, cfg)
        ref = None
        agree: dict[str, float] = {}
        g = torch.Generator().manual_seed(1)
        if reference is not None:
            classes = import_reference(reference, ref_pythonpath or [])
            ref = ReferenceUpdate(build_reference(classes, policy, critic, pc, cfg), buf, cfg)
            agree = loss_agreement(policy, critic, ref, buf, cfg, g)
        opts: PPOOptimizers = build_optimizers(policy, critic, cfg)
        ours_mbs = _forever(lambda: buf.minibatches(batch_size, g))
        ref_mbs = _forever(lambda: ref.minibatches(g)) if ref is not None else None

        def ours_step(rows: int) -> None:
            cfg.cpu_chunk_rows = rows
            mb = next(ours_mbs)  # the gather is part of the step, as in the reference's loop
            update_minibatch(policy, critic, mb, opts, cfg, buf.act_steps, actor_step=True)

        names = {c: f"ours (cpu_chunk_rows={c})" for c in chunk_rows}
        times: dict[str, list[tuple[float, float]]] = {n: [] for n in names.values()}
        times["reference"] = []
        other = OtherLoad()
        for i in range(minibatches + 1):  # minibatch 0 warms everything up
            for c, name in names.items():
                t = _timed(lambda c=c: ours_step(c))
                if i:
                    times[name].append(t)
            if ref is not None:
                t = _timed(lambda: ref.update(next(ref_mbs)))
                if i:
                    times["reference"].append(t)
        load = other.cores()
    rows = {}
    for name, ts in times.items():
        if ts:
            wall = statistics.median(t[0] for t in ts)
            cpu = statistics.median(t[1] for t in ts)
            rows[name] = {
                "minibatch_wall_s": [round(t[0], 3) for t in ts],
                "minibatch_cpu_s": [round(t[1], 3) for t in ts],
                "median_wall_s": round(wall, 4),
                "median_cpu_s": round(cpu, 4),
                "samples_per_s": round(batch_size / wall, 1),
                "samples_per_cpu_s": round(batch_size / cpu, 1),
            }
    out = {
        "config": config,
        "threads": threads,
        "batch_size": batch_size,
        "minibatches_timed": minibatches,
        "buffer": f"{n_steps}x{n_envs}x{kp}",
        "default_cpu_chunk_rows": PPOConfig().cpu_chunk_rows,
        "rows": rows,
        "loss_agreement": agree,
        "other_load_cores": load,
    }
    if "reference" in rows:
        ref_row = rows["reference"]
        for name in names.values():
            r = rows[name]
            r["speedup"] = round(r["samples_per_s"] / ref_row["samples_per_s"], 3)
            r["speedup_cpu_time"] = round(r["samples_per_cpu_s"] / ref_row["samples_per_cpu_s"], 3)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reference", type=Path, help="work tree of irom-princeton/dppo (omit: ours only)")
    parser.add_argument("--ref-pythonpath", nargs="*", default=[], help="extra import dirs for the reference (einops)")
    parser.add_argument("--config", default="square_mlp", help="benchmark policy configuration (default square_mlp)")
    parser.add_argument("--batch-size", type=int, default=10_000, help="minibatch size (reference square: 10000)")
    parser.add_argument("--minibatches", type=int, default=6, help="timed minibatches per implementation")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--n-envs", type=int, default=50, help="envs of the synthetic buffer (reference: 50)")
    parser.add_argument("--n-steps", type=int, default=400, help="chunk steps of the buffer (reference square: 400)")
    parser.add_argument(
        "--cpu-chunk-rows",
        nargs="+",
        type=int,
        default=None,
        help=f"one 'ours' row per value of PPOConfig.cpu_chunk_rows (default: {PPOConfig().cpu_chunk_rows})",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report (default {DEFAULT_OUT})")


def run(args: argparse.Namespace) -> int:
    res = measure(
        args.config,
        args.batch_size,
        args.minibatches,
        args.threads,
        args.n_envs,
        args.n_steps,
        args.reference,
        args.ref_pythonpath,
        args.cpu_chunk_rows,
    )
    doc = {
        "machine": {"cpu_model": cpu_model(), "logical_cpus": os.cpu_count(), "torch": torch.__version__},
        "reference": str(args.reference) if args.reference else None,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **res,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, args.out)
    print(
        f"\n{res['config']}: minibatch {res['batch_size']}, {res['minibatches_timed']} timed minibatches each "
        f"(interleaved), {res['threads']} threads, buffer {res['buffer']}, other load {res['other_load_cores']} cores"
    )
    print(
        "| implementation | median wall s / minibatch | samples/s (wall) | median CPU s / minibatch | "
        "samples/CPU s | vs reference (wall, CPU) |"
    )
    print("|---|---|---|---|---|---|")
    for name, r in res["rows"].items():
        vs = f"{r['speedup']}x, {r['speedup_cpu_time']}x" if "speedup" in r else "-"
        print(
            f"| {name} | {r['median_wall_s']} | {r['samples_per_s']} | {r['median_cpu_s']} | "
            f"{r['samples_per_cpu_s']} | {vs} |"
        )
    if res["loss_agreement"]:
        a = res["loss_agreement"]
        print(
            f"\nsame minibatch and weights, ours vs reference: |d pg_loss| {a['pg_loss_abs_diff']:.1e}, "
            f"|d v_loss| {a['v_loss_abs_diff']:.1e}, |d approx_kl| {a['approx_kl_abs_diff']:.1e}"
        )
    print(f"\nwrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

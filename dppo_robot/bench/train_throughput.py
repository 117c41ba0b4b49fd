"""`dppo-robot bench train`: throughput of the two halves of a DPPO iteration.

0. Env step cost per task: env steps/s against raw `mj_step` of the same model, states and
   substeps, measured in the same run (dppo_robot.bench.step_cost); the ratio is the overhead
   over MuJoCo's own floor.
1. Collector: environment steps per second of the local VectorEnv for 1, 2 and 4 worker
   processes (and in-process), driven with random action chunks, so only simulation and
   inter-process traffic are measured.
2. PPO update: (env step x denoising step) samples per second of ppo_update on a buffer filled
   from the policy's own exploration chains, for the square MLP (DDPM K=20, K'=10) and one_leg
   MLP ([1024]x7 LayerNorm, DDIM-5, all 5 fine-tuned) reference configurations.

Shapes: buffer T x N env steps; DPPO samples T * N * K'. Writes JSON and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from dppo_robot.bench.configs import get_config
from dppo_robot.bench.machine_floor import OtherLoad, cpu_model, torch_threads
from dppo_robot.bench.step_cost import measure_step_cost
from dppo_robot.envs.registry import default_task_config
from dppo_robot.model.policy_factory import build_critic
from dppo_robot.rl.ppo_update import PPOConfig, build_optimizers, ppo_update
from dppo_robot.rl.returns import RunningRewardScaler
from dppo_robot.rl.rollout_buffer import RolloutBuffer

DEFAULT_OUT = Path("reports/bench/train.json")


def collector_rate(task: str, n_envs: int, n_workers: int, chunks: int, seed: int = 0) -> dict:
    """Env steps/s of the process-pool collector (VectorEnv; 0 workers: in-process) stepping random chunks."""
    row = collector_backend_rate(task, n_envs, n_workers, chunks, "process", seed=seed)
    return {"kind": "collector", **{k: v for k, v in row.items() if k not in ("kind", "backend")}}


def collector_backend_rate(
    task: str, n_envs: int, n_workers: int, chunks: int, backend: str, address: str = "local", seed: int = 0
) -> dict:
    """Env steps/s of a make_collector(backend) collector stepping random chunks (after a warm-up step).

    The same measurement as collector_rate for either backend ("process": VectorEnv worker
    processes; "ray": RayCollector actors on the Ray cluster at `address`, or the one this
    process is connected to). Building the collector (process / actor start) is not timed.
    """
    from dppo_robot.train.rollout import make_collector

    cfg = default_task_config(task)
    rng = np.random.default_rng(seed)
    col = make_collector(cfg, n_envs, n_workers, backend=backend, address=address)
    try:
        col.reset([seed + i for i in range(n_envs)])
        da = col.single_action_space.shape[-1]
        col.step(rng.uniform(-1, 1, (n_envs, cfg.act_steps, da)).astype(np.float32))
        steps, other = 0, OtherLoad()
        t0 = time.perf_counter()
        for _ in range(chunks):
            _, _, _, _, infos = col.step(rng.uniform(-1, 1, (n_envs, cfg.act_steps, da)).astype(np.float32))
            steps += sum(int(i.get("steps", cfg.act_steps)) for i in infos)
        dt = time.perf_counter() - t0
    finally:
        col.close()
    return {
        "kind": "collector_backend",
        "backend": backend,
        "task": task,
        "n_envs": n_envs,
        "workers": n_workers,
        "env_steps": steps,
        "seconds": round(dt, 3),
        "env_steps_per_s": round(steps / dt, 1),
        "chunk_step_ms": round(1000 * dt / chunks, 2),
        "other_load_cores": other.cores(),
    }


def collector_backend_rows(
    task: str,
    n_envs: int,
    chunks: int,
    workers: tuple[int, ...] = (1, 2),
    backends: tuple[str, ...] = ("process", "ray"),
    address: str = "local",
) -> list[dict]:
    """collector_backend_rate for each backend x worker count; a local Ray starts once for all rows."""
    started = False
    if "ray" in backends:
        import ray

        if not ray.is_initialized():
            if address == "local":
                ray.init(address="local", include_dashboard=False, num_cpus=max(max(workers), os.cpu_count() or 1))
            else:
                ray.init(address=address)
            started = True
    try:
        return [collector_backend_rate(task, n_envs, w, chunks, b, address) for b in backends for w in workers]
    finally:
        if started:
            ray.shutdown()


def update_rate(config: str, n_envs: int, n_steps: int, batch_size: int, epochs: int, threads: int) -> dict:
    """Samples/s of ppo_update on a filled, finalised buffer of the config's policy."""
    bc = get_config(config)
    pc = bc.policy
    with torch_threads(threads):
        policy = bc.build()
        if policy.ft_denoising_steps == 0:
            policy.enable_finetuning(policy.n_steps)
        kp = policy.ft_denoising_steps
        critic = build_critic(pc, [512, 512, 512], residual_style=True)
        cfg = PPOConfig(update_epochs=epochs, batch_size=batch_size, n_critic_warmup_itr=0, target_kl=None)
        opts = build_optimizers(policy, critic, cfg)
        buf = RolloutBuffer(
            n_steps, n_envs, pc.obs_dim, pc.cond_steps, pc.horizon_steps, pc.action_dim, pc.act_steps, kp
        )
        g = torch.Generator().manual_seed(0)
        buf.reset()
        with torch.no_grad():
            for _ in range(n_steps):
                cond = {"state": torch.randn(n_envs, pc.cond_steps, pc.obs_dim, generator=g)}
                chain = policy.sample(cond, "explore", generator=g, return_chain=True).chain
                buf.add(cond, torch.rand(n_envs), torch.zeros(n_envs), torch.zeros(n_envs), chain=chain)
            t0 = time.perf_counter()
            buf.finalize(
                policy,
                critic,
                {"state": torch.randn(n_envs, pc.cond_steps, pc.obs_dim)},
                cfg,
                RunningRewardScaler(n_envs),
            )
            t_logprob = time.perf_counter() - t0
        other = OtherLoad()
        t0 = time.perf_counter()
        stats = ppo_update(policy, critic, buf, opts, cfg, itr=1, generator=g)
        dt = time.perf_counter() - t0
    samples = int(stats["n_minibatches"]) * batch_size
    return {
        "kind": "ppo_update",
        "config": config,
        "threads": threads,
        "buffer": f"{n_steps}x{n_envs}x{kp}",
        "batch_size": batch_size,
        "minibatches": int(stats["n_minibatches"]),
        "samples": samples,
        "seconds": round(dt, 3),
        "samples_per_s": round(samples / dt, 1),
        "old_logprob_s": round(t_logprob, 3),
        "other_load_cores": other.cores(),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report (default {DEFAULT_OUT})")
    parser.add_argument(
        "--step-tasks",
        nargs="*",
        default=["lift", "can", "square", "one_leg"],
        help="tasks whose env step is timed against raw mj_step (default lift can square one_leg; none: skip)",
    )
    parser.add_argument("--step-steps", type=int, default=300, help="env steps per step-cost row")
    parser.add_argument("--task", default="lift", help="task of the collector benchmark (default lift)")
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 1, 2, 4], help="worker counts (0: in-process)")
    parser.add_argument("--n-envs", type=int, default=8, help="envs of the collector benchmark")
    parser.add_argument(
        "--backends",
        nargs="*",
        default=["process", "ray"],
        help="collector backends compared at 1 and 2 workers (default process ray; ray needs dppo-robot[ray])",
    )
    parser.add_argument("--update-batch", type=int, default=10_000, help="PPO minibatch (reference robomimic: 10000)")
    parser.add_argument("--chunks", type=int, default=40, help="timed chunk steps per collector row")
    parser.add_argument("--update-configs", nargs="+", default=["square_mlp", "one_leg_mlp"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (tests)")


def run(args: argparse.Namespace) -> int:
    quick = args.quick
    rows = []
    for task in args.step_tasks:
        print(f"env step {task}: vs raw mj_step ...", flush=True)
        other = OtherLoad()
        row = measure_step_cost(task, 20 if quick else args.step_steps)
        rows.append({**row, "other_load_cores": other.cores()})
    for w in args.workers:
        print(f"collector {args.task}: {args.n_envs} envs, {w} workers ...", flush=True)
        rows.append(collector_rate(args.task, args.n_envs, w, 2 if quick else args.chunks))
    if args.backends:
        print(f"collector backends {args.backends} on {args.task}: 1 and 2 workers ...", flush=True)
        chunks = 2 if quick else args.chunks
        rows += collector_backend_rows(args.task, args.n_envs, chunks, (1, 2), tuple(args.backends))
    for name in args.update_configs:
        for th in args.threads:
            print(f"ppo_update {name}: {th} threads ...", flush=True)
            # 50 envs x 40 steps x K' samples: at least one minibatch of --update-batch for K' >= 5
            n_envs, n_steps, batch, epochs = (2, 2, 20, 1) if quick else (50, 40, args.update_batch, 1)
            rows.append(update_rate(name, n_envs, n_steps, batch, epochs, th))
    doc = {
        "machine": {"cpu_model": cpu_model(), "logical_cpus": os.cpu_count(), "torch": torch.__version__},
        "rows": rows,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    os.replace(tmp, args.out)
    steps = [r for r in rows if r["kind"] == "env_step"]
    if steps:
        print("\n| task | substeps/step | env steps/s | raw mj_step steps/s | ratio | other load (cores) |")
        print("|---|---|---|---|---|---|")
        for r in steps:
            print(
                f"| {r['task']} | {r['substeps_per_step']} | {r['env_steps_per_s']} | {r['raw_steps_per_s']} | "
                f"{r['ratio']}x | {r['other_load_cores']} |"
            )
    print("\n| kind | what | workers / threads | rate | other load (cores) |")
    print("|---|---|---|---|---|")
    for r in rows:
        if r["kind"] == "env_step":
            continue
        if r["kind"] in ("collector", "collector_backend"):
            what = f"{r['task']}, {r['n_envs']} envs" + (f", {r['backend']}" if "backend" in r else "")
            print(
                f"| collector | {what} | {r['workers']} workers | {r['env_steps_per_s']} env steps/s | "
                f"{r['other_load_cores']} |"
            )
        else:
            what = f"{r['config']}, buffer {r['buffer']}, batch {r['batch_size']}"
            print(
                f"| ppo_update | {what} | {r['threads']} threads | {r['samples_per_s']} samples/s | "
                f"{r['other_load_cores']} |"
            )
    print(f"\nwrote {args.out}")
    return 0

"""`make demo` / `dppo-robot demo`: the export-and-infer path end to end, on a fresh policy.

Until a fine-tuned default policy ships in policies/, the demo builds a small DDIM MLP policy,
clones a scripted reaching expert on synthetic data for a few seconds (behaviour cloning),
writes a project checkpoint, exports it to a verified bundle, loads the bundle with the ONNX
runtime and acts on held-out observations. Every figure it prints is measured in this run.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from dppo_robot.bundle.export import export_checkpoint
from dppo_robot.checkpoint import PolicyCheckpoint, save_checkpoint
from dppo_robot.io_spec import IOSpec, Slice
from dppo_robot.model.normalization import Normalization
from dppo_robot.model.policy_config import DenoiserConfig, DiffusionConfig, PolicyConfig
from dppo_robot.model.policy_factory import build_diffusion_policy
from dppo_robot.runtime.policy_runtime import PolicyRuntime, RuntimeConfig
from dppo_robot.typed_config import to_dict

SPEC = IOSpec(
    obs=[
        Slice("ee_pos", 3, "m", "base", "end-effector position"),
        Slice("target_pos", 3, "m", "base", "target position"),
    ],
    action=[Slice("ee_delta_pos", 3, "m", "base", "end-effector displacement per step")],
    control_hz=20.0,
)


def expert_chunk(obs: np.ndarray, horizon: int, gain: float = 0.3, max_step_m: float = 0.05) -> np.ndarray:
    """Scripted reaching expert: obs [N, 6] -> displacement chunk [N, Tp, 3], a fraction of the
    remaining distance per step, clipped to max_step_m per axis."""
    ee, target = obs[:, :3].copy(), obs[:, 3:]
    out = []
    for _ in range(horizon):
        step = np.clip(gain * (target - ee), -max_step_m, max_step_m)
        out.append(step)
        ee = ee + step
    return np.stack(out, axis=1).astype(np.float32)


def synthetic_dataset(n: int, horizon: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    ee = rng.uniform([0.3, -0.3, 0.0], [0.7, 0.3, 0.4], size=(n, 3))
    target = rng.uniform([0.3, -0.3, 0.0], [0.7, 0.3, 0.4], size=(n, 3))
    obs = np.concatenate([ee, target], axis=1).astype(np.float32)
    return obs, expert_chunk(obs, horizon)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="reports/demo", help="output directory (default reports/demo)")
    parser.add_argument("--train-seconds", type=float, default=20.0, help="behaviour-cloning time budget")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    console = Console()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

    cfg = PolicyConfig(
        obs_dim=6,
        action_dim=3,
        cond_steps=1,
        horizon_steps=4,
        act_steps=4,
        denoiser=DenoiserConfig(kind="mlp", mlp_dims=[256, 256, 256], time_dim=16),
        diffusion=DiffusionConfig(denoising_steps=20, ddim_steps=5),
    )
    obs, act = synthetic_dataset(20000, cfg.horizon_steps, rng)
    norm = Normalization.fit(obs, act.reshape(-1, 3), obs_clip=5.0)
    obs_n = torch.from_numpy(norm.normalize_obs(obs))[:, None]
    act_n = torch.from_numpy(norm.normalize_action(act))
    policy = build_diffusion_policy(cfg, SPEC)
    opt = torch.optim.AdamW(policy.actor.parameters(), lr=1e-3, weight_decay=1e-6)
    losses: list[float] = []
    console.print(f"[bold]1/4 behaviour cloning[/] a reaching expert ({len(obs)} samples, {args.train_seconds:g} s)")
    t0 = time.monotonic()
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(), console=console) as bar:
        task = bar.add_task("bc", total=args.train_seconds)
        while (elapsed := time.monotonic() - t0) < args.train_seconds:
            idx = torch.randint(0, len(obs), (256,))
            loss = policy.bc_loss(act_n[idx], {"state": obs_n[idx]})
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            bar.update(task, completed=elapsed, description=f"bc loss {np.mean(losses[-50:]):.4f}")
    ckpt_path = out / "demo_policy.pt"
    save_checkpoint(
        PolicyCheckpoint(
            policy_config=cfg,
            io_spec=SPEC,
            normalization=norm,
            model=policy.state_dict(),
            train_config={"job": "demo_bc", "policy": to_dict(cfg), "seed": args.seed, "steps": len(losses)},
            metrics={"bc_loss_final": float(np.mean(losses[-50:]))},
            step=len(losses),
        ),
        ckpt_path,
    )
    console.print(f"[bold]2/4 checkpoint[/] {ckpt_path}")
    console.print("[bold]3/4 export[/] unrolled DDIM chain to ONNX, verified against torch")
    manifest = export_checkpoint(ckpt_path, out / "bundle", name="demo_reach", overwrite=True)
    console.print(f"[bold]4/4 runtime[/] {out / 'bundle'} with onnxruntime")
    rt = PolicyRuntime(out / "bundle", RuntimeConfig(intra_op_threads=1))
    test_obs, test_act = synthetic_dataset(500, cfg.horizon_steps, rng)
    lat, errs = [], []
    for o, a in zip(test_obs, test_act):
        pred = rt.predict(o[None], rng=rng)
        lat.append(rt.last_latency_s * 1e3)
        errs.append(np.abs(pred - a).max())
    summary = {
        "bc_steps": len(losses),
        "bc_loss_first50": float(np.mean(losses[:50])),
        "bc_loss_last50": float(np.mean(losses[-50:])),
        "export_max_abs_diff": manifest.provenance.verification["max_abs_diff"],
        "runtime_p50_ms": float(np.percentile(lat, 50)),
        "runtime_p99_ms": float(np.percentile(lat, 99)),
        "held_out_max_abs_err_m_median": float(np.median(errs)),
        "expert_step_scale_m": float(np.abs(test_act).mean()),
        "providers": rt.providers,
    }
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=2))
    table = Table(title="dppo_robot demo: build -> BC -> export -> ONNX runtime")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("BC steps", str(summary["bc_steps"]))
    table.add_row(
        "BC loss (first 50 -> last 50 steps)", f"{summary['bc_loss_first50']:.4f} -> {summary['bc_loss_last50']:.4f}"
    )
    for b, d in summary["export_max_abs_diff"].items():
        table.add_row(f"ONNX vs torch max |diff|, batch {b}", f"{d:.2e}")
    table.add_row(
        "runtime latency p50 / p99 (ms, batch 1)", f"{summary['runtime_p50_ms']:.2f} / {summary['runtime_p99_ms']:.2f}"
    )
    table.add_row(
        "held-out max |action - expert| (median, m)",
        f"{summary['held_out_max_abs_err_m_median']:.4f} (mean |action| {summary['expert_step_scale_m']:.4f})",
    )
    table.add_row("execution providers", ", ".join(rt.providers))
    console.print(table)
    console.print(f"bundle: {out / 'bundle'}   summary: {out / 'demo_summary.json'}")
    return 0

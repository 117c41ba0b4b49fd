"""`dppo-robot pretrain`: behaviour cloning of a diffusion or Gaussian policy from demonstrations.

Diffusion policies minimise the epsilon-prediction loss over uniformly drawn timesteps;
Gaussian policies maximise the chunk log-likelihood. EMA weights (decay 0.995 by default) are
kept and are what evaluation, fine-tuning and export use. The run resumes from
<run_dir>/checkpoints/last.pt when it exists (optimizer, schedule, EMA and RNG state included).

Shapes: batches of obs [B, To, Do] and action chunks [B, Tp, Da], both normalised.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from dppo_robot.checkpoint import PolicyCheckpoint, load_checkpoint, load_weights, save_checkpoint
from dppo_robot.data.dataset import ChunkDataset, load_dataset, load_normalization_npz
from dppo_robot.envs.registry import task_io_spec
from dppo_robot.model.diffusion import DiffusionPolicy
from dppo_robot.model.policy_factory import build_policy
from dppo_robot.rl.lr_schedule import CosineWarmupSchedule
from dppo_robot.train.device import resolve_device
from dppo_robot.train.divergence import check_loss, check_weights
from dppo_robot.train.ema import EMA
from dppo_robot.train.evaluate import evaluate_torch_policy
from dppo_robot.train.job_config import PretrainConfig
from dppo_robot.train.metrics_log import MetricsLog
from dppo_robot.train.progress import JobProgress
from dppo_robot.train.run_dir import RunDir, rng_state, seed_everything, set_rng_state
from dppo_robot.typed_config import ConfigError, load_yaml


def _windows(ds: ChunkDataset) -> tuple[dict, torch.Tensor]:
    """All (obs, action chunk) windows stacked.

    state [M, To, Do], images {cam: [M, To, 3, H, W]}, actions [M, Tp, Da].
    """
    items = [ds[i] for i in range(len(ds))]
    actions = torch.stack([a for _, a in items])
    if isinstance(items[0][0], dict):
        cond = {
            "state": torch.stack([o["state"] for o, _ in items]),
            "images": {c: torch.stack([o["images"][c] for o, _ in items]) for c in items[0][0]["images"]},
        }
    else:
        cond = {"state": torch.stack([o for o, _ in items])}
    return cond, actions


FIRST_CHECKPOINT_STEP = 200  # an early first checkpoint, whatever save_every says


def bc_loss(policy: torch.nn.Module, cond: dict, actions: torch.Tensor) -> torch.Tensor:
    if isinstance(policy, DiffusionPolicy):
        return policy.bc_loss(actions, cond)
    mean, std = policy(cond)
    return -torch.distributions.Normal(mean, std).log_prob(actions).mean()


def pretrain(cfg: PretrainConfig, resume: bool = True) -> Path:
    """Run (or resume) a BC job; returns the final checkpoint path."""
    run = RunDir(cfg.run_dir)
    resuming = resume and run.can_resume()
    cfg_dict = run.write_config(cfg, resuming)
    torch.set_num_threads(cfg.torch_threads)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    data = load_dataset(cfg.dataset, cfg.max_n_episodes)
    norm = load_normalization_npz(cfg.normalization)
    spec = task_io_spec(cfg.task)
    pc = cfg.policy
    for what, have, want in (
        ("dataset states", data.obs_dim, pc.obs_dim),
        ("dataset actions", data.action_dim, pc.action_dim),
        ("task obs spec", spec.obs_dim, pc.obs_dim),
        ("task action spec", spec.action_dim, pc.action_dim),
    ):
        if have != want:
            raise ConfigError(f"{cfg.run_dir}: {what} have {have} dims but policy config says {want}")
    use_images = bool(spec.cameras)
    ds = ChunkDataset(data, pc.cond_steps, pc.horizon_steps, use_images, pc.denoiser.img_cond_steps)
    cond_all, act_all = _windows(ds)
    n = act_all.shape[0]
    policy = build_policy(pc, spec).to(device)
    policy.train()
    # EMA updates run every ema_every steps; those before ema_start_step are plain copies
    ema = EMA(policy, cfg.ema_decay, start_step=max(0, -(-cfg.ema_start_step // cfg.ema_every) - 1))
    params = [p for p in policy.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = CosineWarmupSchedule(opt, cfg.train_steps + 1, cfg.lr, cfg.min_lr, cfg.lr_warmup_steps)
    if cfg.lr_warmup_steps == 0:
        sched._set(cfg.lr)  # no warm-up: start at the peak rate
    log = MetricsLog(run.path, "train", step_key="step")
    eval_log = MetricsLog(run.path, "eval", step_key="step")
    step = 0
    if resuming:
        ck = load_checkpoint(run.last, job="pretrain", policy_config=pc)  # a wrong-kind last.pt: one line
        load_weights(policy, ck.model, run.last, "model")
        ema.load_state_dict(ck.extra["ema_state"])
        opt.load_state_dict(ck.extra["optimizer"])
        sched.load_state_dict(ck.extra["schedule"])
        set_rng_state(ck.extra["rng"])
        step = ck.step
        log.truncate_after(step)
        eval_log.truncate_after(step)
    gen = torch.Generator().manual_seed(cfg.seed)
    if resuming:
        gen.set_state(ck.extra["batch_rng"])

    def save(path: Path, metrics: dict) -> None:
        save_checkpoint(
            PolicyCheckpoint(
                policy_config=pc,
                io_spec=spec,
                normalization=norm,
                model=policy.state_dict(),
                ema=ema.model.state_dict(),
                train_config={"job": "pretrain", **cfg_dict},
                metrics=metrics,
                step=step,
                extra={
                    "ema_state": ema.state_dict(),
                    "optimizer": opt.state_dict(),
                    "schedule": sched.state_dict(),
                    "rng": rng_state(),
                    "batch_rng": gen.get_state(),
                },
            ),
            path,
        )

    metrics: dict = {}
    t_last, losses = time.monotonic(), []
    with JobProgress(f"pretrain {cfg.task.name}", cfg.train_steps, start=step, unit="step") as bar:
        while step < cfg.train_steps:
            idx = torch.randint(0, n, (min(cfg.batch_size, n),), generator=gen)
            # windows stay on the CPU; each batch moves to the device once
            cond = {"state": cond_all["state"][idx].to(device)}
            if "images" in cond_all:
                cond["images"] = {c: v[idx].to(device) for c, v in cond_all["images"].items()}
            loss = bc_loss(policy, cond, act_all[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % cfg.ema_every == 0:
                ema.update(policy)
            losses.append(loss.detach())  # no host sync per step (GPU); read at log time
            if step % cfg.log_every == 0 or step == cfg.train_steps:
                dt = time.monotonic() - t_last
                row = {
                    "step": step,
                    "loss": float(np.mean(torch.stack(losses).cpu().numpy().astype(np.float64))),
                    "lr": opt.param_groups[0]["lr"],
                }
                row["steps_per_s"] = len(losses) / max(dt, 1e-9)
                log.log(row)
                check_loss(row["loss"], "the BC loss", step, run.path)
                metrics.update(bc_loss=row["loss"])
                t_last, losses = time.monotonic(), []
                bar.update(step, f"loss {row['loss']:.4f}")
            do_eval = cfg.eval.every and step % cfg.eval.every == 0
            if do_eval or step == cfg.train_steps:
                res = evaluate_torch_policy(ema.model, norm, cfg.task, cfg.eval)
                s = res.summary()
                eval_log.log({"step": step, **{k: v for k, v in s.items() if not isinstance(v, list)}})
                metrics.update(eval_success_rate=s["success_rate"], eval_success_ci95=s["success_ci95"])
                bar.note(f"step {step}: eval success {res.success}")
            first = step == min(cfg.save_every, FIRST_CHECKPOINT_STEP)  # a kill early keeps some work
            if first or step % cfg.save_every == 0 or step == cfg.train_steps:
                check_weights({"model": policy, "ema": ema.model}, step, run.path)
                save(run.last, metrics)
                if step == cfg.train_steps or step % (cfg.save_every * 5) == 0:
                    save(run.snapshot(step), metrics)
    log.plot(["loss", "lr"])
    eval_log.plot(["success_rate"])
    return run.last


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="pretrain config YAML (configs/<task>/pretrain_*.yaml)")
    parser.add_argument("--run-dir", help="override run_dir")
    parser.add_argument("--steps", type=int, help="override train_steps")
    parser.add_argument("--no-resume", action="store_true", help="refuse to continue an existing run")


def run(args: argparse.Namespace) -> int:
    cfg = load_yaml(PretrainConfig, args.config)
    if args.run_dir:
        cfg.run_dir = args.run_dir
    if args.steps:
        cfg.train_steps = args.steps
    if args.no_resume and RunDir(cfg.run_dir).can_resume():
        raise ConfigError(f"{cfg.run_dir}: a run exists there (remove it or drop --no-resume)")
    path = pretrain(cfg)
    print(f"checkpoint: {path}")
    return 0

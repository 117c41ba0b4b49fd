"""`dppo-robot evaluate`: success rate (Wilson 95% interval) of a checkpoint or bundle in simulation.

A checkpoint runs its torch policy on normalised observations; a bundle runs its ONNX chain
through the runtime on environment-unit observations, exactly as deployment does.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from dppo_robot.checkpoint import load_checkpoint
from dppo_robot.envs.registry import task_io_spec
from dppo_robot.envs.task_config import TaskConfig
from dppo_robot.model.policy_factory import build_policy
from dppo_robot.train.job_config import EvalSettings, EvaluateConfig
from dppo_robot.train.policy_act import deterministic_act
from dppo_robot.train.rollout import EvalResult, make_collector, policy_obs, run_episodes
from dppo_robot.typed_config import load_yaml, to_dict


def evaluate_torch_policy(
    policy: torch.nn.Module, normalization, task: TaskConfig, settings: EvalSettings, progress=None
) -> EvalResult:
    """Deterministic evaluation of a torch policy over settings.n_episodes seeded episodes."""
    policy.eval()
    n_envs = min(settings.n_envs, settings.n_episodes)
    col = make_collector(task, n_envs, settings.n_workers, normalization=normalization)
    try:
        gen = torch.Generator().manual_seed(settings.seed)
        return run_episodes(col, deterministic_act(policy, gen), settings.n_episodes, settings.seed, progress)
    finally:
        col.close()


def evaluate_bundle(bundle_dir: str | Path, task: TaskConfig, settings: EvalSettings, progress=None) -> EvalResult:
    """Evaluate a bundle through the ONNX runtime; its spec must match the task's."""
    from dppo_robot.runtime.policy_runtime import PolicyRuntime, RuntimeConfig

    rt = PolicyRuntime(bundle_dir, RuntimeConfig(intra_op_threads=1, warmup_iters=1))
    spec = task_io_spec(task)
    rt.check_spec(spec, f"task '{task.name}'", cond_steps=task.cond_steps)
    rng = np.random.default_rng(settings.seed)

    def act(obs):
        c = policy_obs(obs)
        imgs = c.get("images")
        return rt.predict(np.asarray(c["state"], np.float32), imgs, rng=rng)

    n_envs = min(settings.n_envs, settings.n_episodes)
    col = make_collector(task, n_envs, settings.n_workers, normalization=None)
    try:
        return run_episodes(col, act, settings.n_episodes, settings.seed, progress)
    finally:
        col.close()


def evaluate(cfg: EvaluateConfig) -> dict:
    torch.set_num_threads(cfg.torch_threads)
    path = Path(cfg.policy)
    t0 = time.monotonic()
    if path.is_dir():
        res = evaluate_bundle(path, cfg.task, cfg.eval)
        kind = "bundle"
    else:
        ckpt = load_checkpoint(path)
        policy = build_policy(ckpt.policy_config, ckpt.io_spec)
        policy.load_state_dict(ckpt.ema if ckpt.ema is not None else ckpt.model)
        res = evaluate_torch_policy(policy, ckpt.normalization, cfg.task, cfg.eval)
        kind = "checkpoint"
    out = {"policy": str(path), "kind": kind, "task": to_dict(cfg.task), **res.summary()}
    out["wall_s"] = round(time.monotonic() - t0, 1)
    out["episodes_detail"] = [
        {"seed": s, "success": o, "return": r, "length": n}
        for s, o, r, n in zip(res.seeds, res.outcomes, res.returns, res.lengths)
    ]
    if res.phases and len(res.phases) == len(out["episodes_detail"]):
        for d, ph in zip(out["episodes_detail"], res.phases):
            d["phase"] = ph
        # episodes that reached at least phase k, for k = 1 .. highest phase seen
        top = max(res.phases)
        out["phase_funnel"] = {str(k): sum(p >= k for p in res.phases) for k in range(1, top + 1)} if top else {}
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    (Path(cfg.out) / "evaluate.json").write_text(json.dumps(out, indent=2))
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="evaluate config YAML (task, policy, eval settings)")
    parser.add_argument("--policy", help="override the checkpoint (.pt) or bundle directory")
    parser.add_argument("--episodes", type=int, help="override eval.n_episodes")
    parser.add_argument("--out", help="override the output directory (out)")


def run(args: argparse.Namespace) -> int:
    cfg = load_yaml(EvaluateConfig, args.config)
    if args.policy:
        cfg.policy = args.policy
    if args.episodes:
        cfg.eval.n_episodes = args.episodes
    if args.out:
        cfg.out = args.out
    out = evaluate(cfg)
    lo, hi = out["success_ci95"]
    print(
        f"{out['task']['name']}: {out['successes']}/{out['episodes']} successes = {out['success_rate']:.2f} "
        f"(95% Wilson [{lo:.2f}, {hi:.2f}]), mean return {out['mean_return']:.2f}, {out['wall_s']} s"
    )
    if "phase_funnel" in out:
        print("episodes reaching phase k: " + ", ".join(f"{k}: {v}" for k, v in out["phase_funnel"].items()))
    return 0

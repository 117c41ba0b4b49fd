"""`dppo-robot finetune`: DPPO (or the Gaussian PPO baseline) from a pre-trained checkpoint.

Shapes: N envs, T chunk steps per iteration, obs [N, To, Do] (normalised by the envs), chains
[N, K'+1, Tp, Da] (DPPO) or actions [N, Tp, Da] (Gaussian); each env step executes Ta actions.

One iteration (reference irom-princeton/dppo agent/finetune/train_ppo_*_agent.py):
1. N envs start fresh episodes (reset_at_iteration) with seeds derived from (seed, itr), so a
   resumed run sees the same episodes;
2. T steps: sample a chunk with exploration (DDIM eta = 1 / DDPM, std floored at
   min_sampling_denoising_std), keep the K'+1 chain elements of the fine-tuned steps, execute
   the first Ta actions, store the summed reward and the terminated / truncated flags;
3. old log-probs and V(s) under no_grad, running reward scaling, GAE over env steps;
4. PPO epochs over joint (env step x denoising step) minibatches; critic only during warm-up.
Checkpoints carry the policy, critic, optimizers, schedules, reward scaler and RNG state, so a
killed job resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from dppo_robot.checkpoint import PolicyCheckpoint, load_checkpoint, load_weights, save_checkpoint
from dppo_robot.envs.registry import task_io_spec
from dppo_robot.model.policy_config import PolicyConfig
from dppo_robot.model.policy_factory import build_critic, build_policy
from dppo_robot.rl.critic_warmup import CriticWarmup, explained_variance
from dppo_robot.rl.gaussian_ppo_loss import sample_gaussian
from dppo_robot.rl.ppo_update import build_optimizers, ppo_update
from dppo_robot.rl.returns import RunningRewardScaler
from dppo_robot.rl.rollout_buffer import RolloutBuffer
from dppo_robot.train.device import resolve_device
from dppo_robot.train.divergence import check_loss, check_weights
from dppo_robot.train.evaluate import evaluate_torch_policy
from dppo_robot.train.job_config import FinetuneConfig
from dppo_robot.train.metrics_log import MetricsLog
from dppo_robot.train.policy_act import to_cond
from dppo_robot.train.progress import JobProgress
from dppo_robot.train.rollout import CollectorSettings, make_collector
from dppo_robot.train.run_dir import RunDir, rng_state, seed_everything, set_rng_state
from dppo_robot.typed_config import ConfigError, from_dict, load_yaml, to_dict


def finetune_policy_config(base: PolicyConfig, cfg: FinetuneConfig) -> PolicyConfig:
    """The pre-trained policy's config with the fine-tuning sampler settings applied."""
    pc = from_dict(PolicyConfig, to_dict(base), "<pretrained policy_config>")
    if cfg.algorithm == "dppo":
        if pc.kind != "diffusion":
            raise ConfigError(
                f"{cfg.checkpoint}: algorithm dppo needs a diffusion policy, the checkpoint has {pc.kind}"
            )
        d = pc.diffusion
        d.ft_denoising_steps = cfg.ft_denoising_steps
        d.min_sampling_denoising_std = cfg.min_sampling_denoising_std
        d.min_logprob_denoising_std = cfg.min_logprob_denoising_std
        d.randn_clip_value = cfg.randn_clip_value
        d.final_action_clip_value = cfg.final_action_clip_value
        d.validate()
    elif pc.kind != "gaussian":
        raise ConfigError(
            f"{cfg.checkpoint}: algorithm gaussian_ppo needs a Gaussian policy, the checkpoint has {pc.kind}"
        )
    return pc


def episode_seeds(seed: int, itr: int, n: int) -> list[int]:
    """Seeds of the N episodes that start iteration itr (a pure function: resume sees the same)."""
    return np.random.default_rng([seed, itr, 7]).integers(0, 2**31 - 1, n).tolist()


def finetune(cfg: FinetuneConfig, resume: bool = True, stop_after_itr: int | None = None) -> Path:
    """Run (or resume) fine-tuning; returns the last checkpoint. stop_after_itr ends early (tests)."""
    run = RunDir(cfg.run_dir)
    resuming = resume and run.can_resume()
    cfg_dict = run.write_config(cfg, resuming)
    torch.set_num_threads(cfg.torch_threads)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    pre = load_checkpoint(cfg.checkpoint)
    pc = finetune_policy_config(pre.policy_config, cfg)
    spec = task_io_spec(cfg.task)
    if [s.name for s in spec.obs] != [s.name for s in pre.io_spec.obs] or spec.obs_dim != pc.obs_dim:
        raise ConfigError(
            f"{cfg.checkpoint}: policy observations {[s.name for s in pre.io_spec.obs]} do not match task "
            f"'{cfg.task.name}' {[s.name for s in spec.obs]}"
        )
    if cfg.task.act_steps != pc.act_steps or cfg.task.cond_steps != pc.cond_steps:
        raise ConfigError(
            f"task Ta={cfg.task.act_steps}, To={cfg.task.cond_steps} differ from the policy's "
            f"Ta={pc.act_steps}, To={pc.cond_steps}"
        )
    dppo = cfg.algorithm == "dppo"
    if dppo:
        base_cfg = from_dict(PolicyConfig, to_dict(pc))
        base_cfg.diffusion.ft_denoising_steps = 0
        policy = build_policy(base_cfg, spec)
        policy.load_state_dict(pre.ema if pre.ema is not None else pre.model)
        policy.enable_finetuning(cfg.ft_denoising_steps)  # base_cfg carries pc's sampler settings
    else:
        policy = build_policy(pc, spec)
        policy.load_state_dict(pre.ema if pre.ema is not None else pre.model)
    policy.eval()  # no dropout / augmentation while sampling; gradients still flow in updates
    critic = build_critic(pc, cfg.critic_dims, residual_style=cfg.critic_residual)
    policy, critic = policy.to(device), critic.to(device)  # before the optimizers take their parameters
    opts = build_optimizers(policy, critic, cfg.ppo)
    T, N, K = cfg.n_steps, cfg.n_envs, (cfg.ft_denoising_steps if dppo else 0)
    img_shapes = {c.name: (3, c.height, c.width) for c in spec.cameras} or None
    buf = RolloutBuffer(
        T, N, pc.obs_dim, pc.cond_steps, pc.horizon_steps, pc.action_dim, pc.act_steps, K, img_shapes, device=device
    )
    scaler = RunningRewardScaler(N, gamma=cfg.ppo.reward_scale_gamma, clip=cfg.ppo.reward_scale_clip)
    log = MetricsLog(run.path, "train")
    eval_log = MetricsLog(run.path, "eval")
    start, env_steps, metrics = 0, 0, {}
    warmup = CriticWarmup(
        cfg.ppo.n_critic_warmup_itr, cfg.ppo.critic_warmup_ev_threshold, cfg.ppo.max_critic_warmup_itr
    )
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    if resuming:
        ck = load_checkpoint(run.last, job="finetune", policy_config=pc)  # a wrong-kind last.pt: one line
        load_weights(policy, ck.model, run.last, "model")
        load_weights(critic, ck.critic, run.last, "critic")
        opts.load_state_dict(ck.extra["optimizers"])
        scaler.load_state_dict(ck.extra["reward_scaler"])
        set_rng_state(ck.extra["rng"])
        gen.set_state(ck.extra["minibatch_rng"])
        start, env_steps, metrics = ck.step, ck.extra["env_steps"], dict(ck.metrics)
        if "critic_warmup" in ck.extra:  # checkpoints before the gate: it re-decides by its rule
            warmup.load_state_dict(ck.extra["critic_warmup"])
        log.truncate_after(start)
        eval_log.truncate_after(start)

    def save(itr_done: int) -> None:
        ck = PolicyCheckpoint(
            policy_config=pc,
            io_spec=spec,
            normalization=pre.normalization,
            model=policy.state_dict(),
            critic=critic.state_dict(),
            train_config={"job": "finetune", "pretrained_sha256": pre.sha256, **cfg_dict},
            metrics=metrics,
            step=itr_done,
            extra={
                "optimizers": opts.state_dict(),
                "reward_scaler": scaler.state_dict(),
                "rng": rng_state(),
                "minibatch_rng": gen.get_state(),
                "env_steps": env_steps,
                "critic_warmup": warmup.state_dict(),
            },
        )
        save_checkpoint(ck, run.last)
        if itr_done == cfg.n_itr or itr_done % (cfg.save_every * 5) == 0:
            save_checkpoint(ck, run.snapshot(itr_done))

    def evaluate(itr: int) -> None:
        res = evaluate_torch_policy(policy, pre.normalization, cfg.task, cfg.eval)
        s = res.summary()
        eval_log.log({"itr": itr, "env_steps": env_steps, **{k: v for k, v in s.items() if not isinstance(v, list)}})
        metrics.update(eval_success_rate=s["success_rate"], eval_success_ci95=s["success_ci95"], eval_itr=itr)
        bar.note(f"itr {itr}: eval success {res.success}")

    cc = cfg.collector
    collector = make_collector(
        cfg.task, N, cfg.n_workers, pre.normalization, cfg.step_timeout_s, cc.backend, cc.address, cc.cpus_per_worker
    )
    obs, last_done = None, np.ones(N, bool)
    try:
        with JobProgress(f"{cfg.algorithm} {cfg.task.name}", cfg.n_itr, start=start) as bar:
            if start == 0 and cfg.eval.every:
                evaluate(0)
            for itr in range(start, cfg.n_itr):
                t0 = time.monotonic()
                if cfg.reset_at_iteration or obs is None:
                    obs = collector.reset(episode_seeds(cfg.seed, itr, N))
                    last_done[:] = True
                buf.reset(torch.as_tensor(last_done, dtype=torch.float32))
                ep_success, ep_return = [], []
                for _ in range(T):
                    cond = to_cond(obs, device)  # one move per chunk step for all N envs
                    with torch.no_grad():
                        if dppo:
                            s = policy.sample(cond, "explore", return_chain=True)
                            chunk, chain, actions = s.actions, s.chain, None
                        else:
                            actions = sample_gaussian(policy, cond, False, cfg.ppo.gaussian_randn_clip_value)
                            chunk, chain = actions, None
                    obs, rew, term, trunc, infos = collector.step(chunk[:, : pc.act_steps].cpu().numpy())
                    buf.add(cond, torch.as_tensor(rew), torch.as_tensor(term), torch.as_tensor(trunc), chain, actions)
                    env_steps += int(sum(i.get("steps", pc.act_steps) for i in infos))
                    for i, inf in enumerate(infos):
                        if term[i] or trunc[i]:
                            ep_success.append(bool(inf["episode_success"]))
                            ep_return.append(float(inf["episode_return"]))
                    last_done = term | trunc
                t_collect = time.monotonic() - t0
                with torch.no_grad():
                    buf.finalize(policy, critic, to_cond(obs, device), cfg.ppo, scaler)
                ev_before = explained_variance(buf.values.cpu().numpy(), buf.returns.cpu().numpy())
                actor_on = warmup.actor_active(itr, ev_before)
                stats = ppo_update(policy, critic, buf, opts, cfg.ppo, itr, gen, update_actor=actor_on)
                opts.step_schedulers(itr, cfg.ppo.n_critic_warmup_itr, actor_on)
                row = {
                    "itr": itr + 1,
                    "env_steps": env_steps,
                    "episodes": len(ep_success),
                    "train_success_rate": float(np.mean(ep_success)) if ep_success else float("nan"),
                    "train_return": float(np.mean(ep_return)) if ep_return else float("nan"),
                    "reward_per_step": float(buf.rewards.mean()),
                    "collect_s": t_collect,
                    "update_s": time.monotonic() - t0 - t_collect,
                    "actor_lr": opts.actor.param_groups[0]["lr"],
                    "critic_ev_before_update": ev_before,  # the warm-up gate's input (rl.critic_warmup)
                    **{k: v for k, v in stats.items() if isinstance(v, int | float)},
                }
                log.log(row)
                metrics.update(train_success_rate=row["train_success_rate"], env_steps=env_steps, itr=itr + 1)
                bar.update(itr + 1, f"success {row['train_success_rate']:.2f} kl {row.get('approx_kl', 0):.2e}")
                done = itr + 1
                if cfg.eval.every and (done % cfg.eval.every == 0 or done == cfg.n_itr):
                    evaluate(done)
                for key in ("pg_loss", "v_loss", "loss"):
                    if key in row:
                        check_loss(float(row[key]), key, done, run.path)
                if done == 1 or done % cfg.save_every == 0 or done == cfg.n_itr or done == stop_after_itr:
                    check_weights({"policy": policy, "critic": critic}, done, run.path)
                    save(done)
                if stop_after_itr is not None and done >= stop_after_itr:
                    break
    finally:
        collector.close()
        log.plot(["train_success_rate", "train_return", "approx_kl", "explained_variance"])
        eval_log.plot(["success_rate"])
    return run.last


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="finetune config YAML (configs/<task>/finetune_*.yaml)")
    parser.add_argument("--run-dir", help="override run_dir")
    parser.add_argument("--checkpoint", help="override the pre-trained checkpoint")
    parser.add_argument("--itr", type=int, help="override n_itr")
    parser.add_argument("--no-resume", action="store_true", help="refuse to continue an existing run")
    parser.add_argument("--collector", choices=["process", "ray"], help="override collector.backend")
    parser.add_argument("--ray-address", help="override collector.address (local, auto, HOST:PORT, ray://HOST:PORT)")


def run(args: argparse.Namespace) -> int:
    cfg = load_yaml(FinetuneConfig, args.config)
    if args.run_dir:
        cfg.run_dir = args.run_dir
    if args.checkpoint:
        cfg.checkpoint = args.checkpoint
    if args.itr:
        cfg.n_itr = args.itr
    if args.collector or args.ray_address:
        if args.collector == "process":
            cfg.collector = CollectorSettings()  # address and cpus_per_worker are Ray's
        cfg.collector.backend = args.collector or cfg.collector.backend
        cfg.collector.address = args.ray_address or cfg.collector.address
        try:
            cfg.collector.validate()
            cfg.validate()
        except ValueError as e:
            raise ConfigError(f"{args.config} with --collector/--ray-address: {e}") from None
    if args.no_resume and RunDir(cfg.run_dir).can_resume():
        raise ConfigError(f"{cfg.run_dir}: a run exists there (remove it or drop --no-resume)")
    print(f"checkpoint: {finetune(cfg)}")
    return 0

import copy

import pytest
import torch

from dppo_robot.model.policy_config import DenoiserConfig, DiffusionConfig, GaussianConfig, PolicyConfig
from dppo_robot.model.policy_factory import build_critic, build_diffusion_policy, build_gaussian_policy
from dppo_robot.rl.gaussian_ppo_loss import sample_gaussian
from dppo_robot.rl.lr_schedule import CosineWarmupSchedule
from dppo_robot.rl.ppo_update import LRScheduleConfig, PPOConfig, build_optimizers, ppo_update
from dppo_robot.rl.returns import RunningRewardScaler
from dppo_robot.rl.rollout_buffer import RolloutBuffer
from dppo_robot.typed_config import ConfigError, from_dict


def test_lr_schedule_by_hand():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-5)
    s = CosineWarmupSchedule(opt, first_cycle_steps=20, max_lr=1e-5, min_lr=1e-6, warmup_steps=5)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(20):
        s.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == pytest.approx(1e-6)  # starts at min_lr
    assert lrs[1] == pytest.approx(1e-6 + 9e-6 / 5)  # linear warm-up
    assert lrs[5] == pytest.approx(1e-5)  # peak after warm-up
    assert lrs[10] == pytest.approx(1e-6 + 9e-6 * (1 + 0.5) / 2)  # cos(pi * 5 / 15) = 0.5
    assert lrs[20] == pytest.approx(1e-6)  # warm restart
    state = s.state_dict()
    s2 = CosineWarmupSchedule(opt, 20, 1e-5, 1e-6, 5)
    s2.load_state_dict(state)
    s.step()
    s2.step()
    assert s.get_last_lr() == s2.get_last_lr()


def test_ppo_config_loads_strictly():
    cfg = from_dict(PPOConfig, {"batch_size": 8800, "actor_lr_scheduler": {"min_lr": 1e-6}, "target_kl": None})
    assert cfg.batch_size == 8800 and cfg.actor_lr_scheduler.min_lr == 1e-6 and cfg.target_kl is None
    assert cfg.critic_lr_scheduler.min_lr == 1e-3
    with pytest.raises(ConfigError):
        from_dict(PPOConfig, {"gamma_denoisng": 0.9})
    with pytest.raises(ConfigError):
        from_dict(PPOConfig, {"gaussian_logprob_steps": "all"})


def _pcfg(kind, act_steps=1):
    return PolicyConfig(
        kind=kind,
        obs_dim=2,
        action_dim=2,
        cond_steps=1,
        horizon_steps=2,
        act_steps=act_steps,
        denoiser=DenoiserConfig(mlp_dims=[32, 32], time_dim=8),
        diffusion=DiffusionConfig(denoising_steps=10, ft_denoising_steps=5, randn_clip_value=3),
        gaussian=GaussianConfig(mlp_dims=[32, 32], fixed_std=0.1, learn_fixed_std=True, std_max=0.5),
    )


def _target(s):
    return 0.6 * s  # [B, 1, 2] -> the best first action of the chunk


def _reward(s, a):
    """Contextual bandit: -|a - target(s)| summed over the executed step (Ta = 1) and action dims."""
    return -(a[:, :1] - _target(s)).abs().sum(dim=(-1, -2))


def _act(policy, kind, s, gen):
    with torch.no_grad():
        if kind == "diffusion":
            out = policy.sample({"state": s}, mode="explore", return_chain=True, generator=gen)
            return out.actions, out.chain
        return sample_gaussian(policy, {"state": s}, generator=gen), None


def _setup(kind, seed, lr=3e-3, n_envs=64, n_steps=2, **overrides):
    torch.manual_seed(seed)
    pcfg = _pcfg(kind)
    policy = build_diffusion_policy(pcfg) if kind == "diffusion" else build_gaussian_policy(pcfg)
    critic = build_critic(pcfg, [32, 32])
    kp = pcfg.diffusion.ft_denoising_steps if kind == "diffusion" else 0
    kwargs = {
        "update_epochs": 5,
        "batch_size": n_envs * n_steps * max(kp, 1) // 4,
        "actor_lr": lr,
        "critic_lr": 1e-2,
        "actor_lr_scheduler": LRScheduleConfig(first_cycle_steps=100, warmup_steps=0, min_lr=lr),
        "critic_lr_scheduler": LRScheduleConfig(first_cycle_steps=100, warmup_steps=0, min_lr=1e-2),
        "n_critic_warmup_itr": 1,
        "clip_ploss_coef": 0.1,
        "clip_ploss_coef_base": 0.02,
        "target_kl": None,
    }
    cfg = PPOConfig(**{**kwargs, **overrides})
    buf = RolloutBuffer(n_steps, n_envs, 2, 1, 2, 2, pcfg.act_steps, ft_denoising_steps=kp)
    return policy, critic, cfg, buf


def _collect(policy, critic, kind, cfg, buf, scaler, gen):
    buf.reset()
    for _ in range(buf.n_steps):
        s = torch.rand(buf.n_envs, 1, 2, generator=gen) * 2 - 1
        a, chain = _act(policy, kind, s, gen)
        done = torch.ones(buf.n_envs)  # one-step episodes
        buf.add({"state": s}, _reward(s, a), done, torch.zeros(buf.n_envs), chain=chain, actions=a)
    buf.finalize(policy, critic, {"state": torch.zeros(buf.n_envs, 1, 2)}, cfg, scaler)


def _mean_reward(policy, kind):
    s = torch.rand(512, 1, 2, generator=torch.Generator().manual_seed(123)) * 2 - 1
    a, _ = _act(policy, kind, s, torch.Generator().manual_seed(7))
    return _reward(s, a).mean().item()


@pytest.mark.parametrize("kind", ["diffusion", "gaussian"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bandit_reward_improves(kind, seed):
    policy, critic, cfg, buf = _setup(kind, seed)
    opt = build_optimizers(policy, critic, cfg)
    scaler = RunningRewardScaler(buf.n_envs)
    gen = torch.Generator().manual_seed(seed)
    before = _mean_reward(policy, kind)
    for itr in range(6):
        _collect(policy, critic, kind, cfg, buf, scaler, gen)
        stats = ppo_update(policy, critic, buf, opt, cfg, itr, generator=gen)
        opt.step_schedulers(itr, cfg.n_critic_warmup_itr)
        if itr == 0:
            assert stats["actor_updated"] == 0.0 and _mean_reward(policy, kind) == before
    after = _mean_reward(policy, kind)
    assert after > before + 0.15, (before, after)


def test_critic_warmup_leaves_actor_unchanged_then_actor_trains():
    policy, critic, cfg, buf = _setup("diffusion", 0, n_critic_warmup_itr=2)
    opt = build_optimizers(policy, critic, cfg)
    gen = torch.Generator().manual_seed(0)
    frozen = copy.deepcopy(policy.actor.state_dict())
    ft0 = copy.deepcopy(policy.actor_ft.state_dict())
    critic0 = copy.deepcopy(critic.state_dict())
    _collect(policy, critic, "diffusion", cfg, buf, None, gen)
    for itr in range(2):
        stats = ppo_update(policy, critic, buf, opt, cfg, itr, generator=gen)
        assert stats["actor_updated"] == 0.0
    assert all(torch.equal(v, ft0[k]) for k, v in policy.actor_ft.state_dict().items())
    assert not all(torch.equal(v, critic0[k]) for k, v in critic.state_dict().items())
    assert len(opt.actor.state) == 0  # AdamW never stepped
    stats = ppo_update(policy, critic, buf, opt, cfg, 2, generator=gen)
    assert stats["actor_updated"] == 1.0
    assert not all(torch.equal(v, ft0[k]) for k, v in policy.actor_ft.state_dict().items())
    assert all(torch.equal(v, frozen[k]) for k, v in policy.actor.state_dict().items())


@pytest.mark.parametrize("kind", ["diffusion", "gaussian"])
def test_target_kl_stops_after_the_offending_minibatch(kind):
    policy, critic, cfg, buf = _setup(kind, 0, n_critic_warmup_itr=0)
    gen = torch.Generator().manual_seed(0)
    _collect(policy, critic, kind, cfg, buf, None, gen)
    opt = build_optimizers(policy, critic, cfg)
    full = ppo_update(policy, critic, buf, opt, cfg, 0, generator=gen)
    assert full["n_minibatches"] == cfg.update_epochs * 4 and full["early_stopped"] == 0.0
    cfg.target_kl = -1.0  # approx_kl (k3) is never negative: the first minibatch stops the iteration
    ft = copy.deepcopy(dict(policy.named_parameters()))
    stats = ppo_update(policy, critic, buf, opt, cfg, 1, generator=gen)
    assert stats["n_minibatches"] == 1.0 and stats["epochs"] == 1.0 and stats["early_stopped"] == 1.0
    # the offending minibatch's step was still applied
    assert any(not torch.equal(p, ft[n]) for n, p in policy.named_parameters() if p.requires_grad)


def test_max_grad_norm_clips_actor_gradient():
    policy, critic, cfg, buf = _setup("gaussian", 0, n_critic_warmup_itr=0, max_grad_norm=1e-3)
    cfg.update_epochs, cfg.batch_size = 1, buf.n_samples
    gen = torch.Generator().manual_seed(0)
    _collect(policy, critic, "gaussian", cfg, buf, None, gen)
    opt = build_optimizers(policy, critic, cfg)
    norms = []
    opt.actor.step = lambda: norms.append(  # record the gradient norm the optimizer would apply
        torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in policy.parameters() if p.grad is not None]))
    )
    ppo_update(policy, critic, buf, opt, cfg, 0, generator=gen)
    assert len(norms) == 1 and norms[0].item() <= 1e-3 * (1 + 1e-4)

import math

import pytest
import torch

from dppo_robot.model.policy_config import DenoiserConfig, DiffusionConfig, PolicyConfig
from dppo_robot.model.policy_factory import build_critic, build_diffusion_policy
from dppo_robot.rl.dppo_loss import clip_coef_schedule, denoising_discount, dppo_loss
from dppo_robot.rl.ppo_update import PPOConfig
from tests.rl._stubs import StubCritic, StubDiffusion


def test_clip_schedule_k5_from_0p001_to_0p01():
    c = clip_coef_schedule(5, 0.01, 0.001, 3)
    # 0.001 + 0.009 * (e^{3k/4} - 1) / (e^3 - 1), k = 0..4
    expected = [0.001, 0.00152673394, 0.00264182971, 0.00500248748, 0.01]
    assert c.dtype == torch.float32
    assert torch.allclose(c, torch.tensor(expected), rtol=1e-6, atol=1e-9)


def test_clip_schedule_single_step_uses_clip_coef():
    assert clip_coef_schedule(1, 0.01).tolist() == [pytest.approx(0.01)]


def test_denoising_discount_k3():
    assert torch.allclose(denoising_discount(3, 0.9), torch.tensor([0.81, 0.9, 1.0]))


def _hand_loss(theta, old, adv, idx, ret, v, cfg, kp, ta):
    """Reference DPPO loss with plain Python floats and loops."""
    B = len(adv)

    def chunk_mean(x, b):
        vals = [min(max(x[b][t][d], -5.0), 2.0) for t in range(ta) for d in range(len(x[b][t]))]
        return sum(vals) / len(vals)

    new_m = [chunk_mean(theta, b) for b in range(B)]
    old_m = [chunk_mean(old, b) for b in range(B)]
    mu = sum(adv) / B
    sd = math.sqrt(sum((a - mu) ** 2 for a in adv) / (B - 1))
    a_n = [(a - mu) / (sd + 1e-8) * cfg.gamma_denoising ** (kp - k - 1) for a, k in zip(adv, idx)]
    base, top, rate = cfg.clip_ploss_coef_base, cfg.clip_ploss_coef, cfg.clip_ploss_coef_rate
    clip = [base + (top - base) * (math.exp(rate * k / (kp - 1)) - 1) / (math.exp(rate) - 1) for k in idx]
    lr = [n - o for n, o in zip(new_m, old_m)]
    r = [math.exp(x) for x in lr]
    pg = sum(max(-a * ri, -a * min(max(ri, 1 - c), 1 + c)) for a, ri, c in zip(a_n, r, clip)) / B
    kl = sum((ri - 1) - x for ri, x in zip(r, lr)) / B
    cf = sum(abs(ri - 1) > c for ri, c in zip(r, clip)) / B
    vl = 0.5 * sum((vi - ri) ** 2 for vi, ri in zip(v, ret)) / B
    return pg, vl, kl, cf, sum(r) / B


def test_dppo_loss_matches_hand_computation():
    g = torch.Generator().manual_seed(3)
    B, kp, tp, ta, da = 6, 3, 3, 2, 2
    old = torch.rand(B, tp, da, generator=g) * 9 - 6.5  # some below -5 and above 2
    delta = torch.tensor([0.05, -0.3, 0.002, 0.4, -0.01, 0.2]).view(B, 1, 1)
    theta = old + delta
    adv = torch.tensor([1.0, -2.0, 0.5, 3.0, -0.7, 0.1])
    idx = torch.tensor([0, 1, 2, 2, 1, 0])
    ret = torch.tensor([1.0, 2.0, 0.0, -1.0, 0.5, 0.3])
    v = torch.tensor([0.5, 2.5, 0.1, -2.0, 0.0, 0.3])
    cfg = PPOConfig(gamma_denoising=0.9, clip_ploss_coef=0.2, clip_ploss_coef_base=0.05, clip_ploss_coef_rate=3)
    policy, critic = StubDiffusion(theta, kp), StubCritic(v)
    x = torch.zeros(B, tp, da)
    loss, stats = dppo_loss(policy, {"state": torch.zeros(B, 1, 1)}, x, x, idx, old, adv, ret, v, critic, cfg, ta)
    pg, vl, kl, cf, ratio = _hand_loss(
        theta.tolist(), old.tolist(), adv.tolist(), idx.tolist(), ret.tolist(), v.tolist(), cfg, kp, ta
    )
    assert 0 < cf < 1  # the case mixes clipped and unclipped samples
    assert stats["pg_loss"] == pytest.approx(pg, rel=1e-5)
    assert stats["v_loss"] == pytest.approx(vl, rel=1e-5)
    assert loss.item() == pytest.approx(pg + 0.5 * vl, rel=1e-5)
    assert stats["approx_kl"] == pytest.approx(kl, rel=1e-4)
    assert stats["clipfrac"] == pytest.approx(cf)
    assert stats["ratio"] == pytest.approx(ratio, rel=1e-6)


def test_logprob_clamp_blocks_gradient_of_clamped_elements():
    B, tp, da = 2, 2, 2
    theta = torch.tensor([[[-7.0, -1.0], [3.0, 0.5]], [[-1.0, -2.0], [1.0, 2.5]]])
    policy = StubDiffusion(theta, 2)
    cfg = PPOConfig(clip_ploss_coef=10.0, clip_ploss_coef_base=10.0)  # never clipped by the ratio
    x = torch.zeros(B, tp, da)
    loss, _ = dppo_loss(
        policy,
        {"state": torch.zeros(B, 1, 1)},
        x,
        x,
        torch.tensor([1, 1]),
        torch.zeros(B, tp, da),
        torch.tensor([1.0, -1.0]),
        torch.zeros(B),
        torch.zeros(B),
        StubCritic(torch.zeros(B)),
        cfg,
        tp,
    )
    loss.backward()
    outside = (theta < -5) | (theta > 2)
    assert torch.all(policy.theta.grad[outside] == 0)
    assert torch.all(policy.theta.grad[~outside] != 0)


def test_ratio_clipping_gives_zero_gradient():
    # K' = 1: clip = clip_ploss_coef = 0.1. Advantages [1, -1] normalise to [+0.707, -0.707].
    B, tp, da = 2, 1, 1
    cfg = PPOConfig(clip_ploss_coef=0.1)
    x = torch.zeros(B, tp, da)

    def grads(logratio):
        policy = StubDiffusion(torch.tensor(logratio).view(B, tp, da), 1)
        loss, _ = dppo_loss(
            policy,
            {"state": torch.zeros(B, 1, 1)},
            x,
            x,
            torch.zeros(B, dtype=torch.long),
            torch.zeros(B, tp, da),
            torch.tensor([1.0, -1.0]),
            torch.zeros(B),
            torch.zeros(B),
            StubCritic(torch.zeros(B)),
            cfg,
            tp,
        )
        loss.backward()
        return policy.theta.grad.view(-1)

    # ratio e^0.5 > 1.1 with A > 0 and e^-0.5 < 0.9 with A < 0: both clipped, no gradient
    assert torch.all(grads([0.5, -0.5]) == 0)
    # the same ratios with the other sign of advantage are not clipped (pessimistic bound)
    g = grads([-0.5, 0.5])
    a = 1 / math.sqrt(2)  # normalised advantage magnitude (std of [1, -1] is sqrt(2))
    # d/dtheta of mean(-A e^theta) = -A e^theta / B
    assert g[0].item() == pytest.approx(-a * math.exp(-0.5) / 2, rel=1e-5)
    assert g[1].item() == pytest.approx(a * math.exp(0.5) / 2, rel=1e-5)


def test_value_clipping():
    B = 2
    cfg = PPOConfig(clip_vloss_coef=0.5)
    policy = StubDiffusion(torch.zeros(B, 1, 1), 1)
    x = torch.zeros(B, 1, 1)
    old_v, new_v, ret = torch.tensor([0.0, 0.0]), torch.tensor([2.0, -0.2]), torch.tensor([3.0, 1.0])
    _, stats = dppo_loss(
        policy,
        {"state": torch.zeros(B, 1, 1)},
        x,
        x,
        torch.zeros(B, dtype=torch.long),
        x,
        torch.tensor([1.0, -1.0]),
        ret,
        old_v,
        StubCritic(new_v),
        cfg,
        1,
    )
    # sample 0: unclipped (2-3)^2 = 1, clipped (0.5-3)^2 = 6.25 -> 6.25
    # sample 1: unclipped (-0.2-1)^2 = 1.44, clipped (-0.2-1)^2 = 1.44 -> 1.44
    assert stats["v_loss"] == pytest.approx(0.5 * (6.25 + 1.44) / 2)


def _small_policy(seed=0):
    torch.manual_seed(seed)
    cfg = PolicyConfig(
        obs_dim=3,
        action_dim=2,
        cond_steps=2,
        horizon_steps=4,
        act_steps=2,
        denoiser=DenoiserConfig(mlp_dims=[16, 16], time_dim=4),
        diffusion=DiffusionConfig(denoising_steps=10, ddim_steps=5, ft_denoising_steps=3),
    )
    return build_diffusion_policy(cfg), build_critic(cfg, [16, 16]), cfg


def test_chunk_steps_beyond_ta_do_not_matter():
    policy, critic, pcfg = _small_policy()
    g = torch.Generator().manual_seed(1)
    B = 8
    cond = {"state": torch.randn(B, 2, 3, generator=g)}
    prev, nxt = torch.randn(B, 4, 2, generator=g), torch.randn(B, 4, 2, generator=g)
    idx = torch.randint(0, 3, (B,), generator=g)
    with torch.no_grad():
        old = policy.step_log_probs(cond, prev, nxt, idx) + 0.05 * torch.randn(B, 4, 2, generator=g)
    adv, ret, val = torch.randn(B, generator=g), torch.randn(B, generator=g), torch.randn(B, generator=g)
    cfg = PPOConfig()

    def loss_of(nxt_, old_):
        loss, _ = dppo_loss(policy, cond, prev, nxt_, idx, old_, adv, ret, val, critic, cfg, pcfg.act_steps)
        return loss.item()

    base = loss_of(nxt, old)
    nxt2, old2 = nxt.clone(), old.clone()
    nxt2[:, 2:] += 5.0
    old2[:, 2:] -= 3.0
    assert loss_of(nxt2, old2) == base
    nxt3 = nxt.clone()
    nxt3[:, :2] += 0.5
    assert loss_of(nxt3, old) != base


def test_dppo_loss_grad_reaches_only_actor_ft_and_critic():
    policy, critic, pcfg = _small_policy()
    B = 6
    cond = {"state": torch.randn(B, 2, 3)}
    chains = policy.sample(cond, "explore", return_chain=True).chain
    with torch.no_grad():
        old = policy.chain_log_probs(cond, chains)
    idx = torch.arange(B) % 3
    b = torch.arange(B)
    loss, stats = dppo_loss(
        policy,
        cond,
        chains[b, idx],
        chains[b, idx + 1],
        idx,
        old[b, idx],
        torch.randn(B),
        torch.randn(B),
        torch.zeros(B),
        critic,
        PPOConfig(),
        pcfg.act_steps,
    )
    assert stats["approx_kl"] == pytest.approx(0.0, abs=1e-6) and stats["ratio"] == pytest.approx(1.0, abs=1e-6)
    loss.backward()
    assert all(p.grad is None for p in policy.actor.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.actor_ft.parameters())
    assert all(p.grad is not None for p in critic.parameters())

import math

import pytest
import torch

from dppo_robot.model.gaussian_mlp import GaussianMLP
from dppo_robot.rl.gaussian_ppo_loss import gaussian_ppo_loss, sample_gaussian
from dppo_robot.rl.ppo_update import PPOConfig
from tests.rl._stubs import StubCritic, StubGaussian

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _normal_lp(a, m, s):
    return -0.5 * ((a - m) / s) ** 2 - math.log(s) - LOG_SQRT_2PI


def test_gaussian_loss_matches_hand_computation():
    g = torch.Generator().manual_seed(0)
    B, tp, da = 5, 3, 2
    mean = torch.rand(B, tp, da, generator=g) - 0.5
    std = torch.rand(B, tp, da, generator=g) * 0.2 + 0.05
    actions = mean + std * torch.randn(B, tp, da, generator=g) * 1.5
    old = torch.randn(B, tp, da, generator=g) * 0.5 + 1.0
    adv = torch.tensor([0.3, -1.0, 2.0, 0.0, -0.4])
    ret, v = torch.randn(B, generator=g), torch.randn(B, generator=g)
    cfg = PPOConfig(clip_ploss_coef=0.2, ent_coef=0.01)
    policy = StubGaussian(mean, std)
    loss, stats = gaussian_ppo_loss(
        policy, {"state": torch.zeros(B, 1, 1)}, actions, old, adv, ret, v, StubCritic(v), cfg, act_steps=1
    )

    m, s, a, o = mean.tolist(), std.tolist(), actions.tolist(), old.tolist()
    n = tp * da  # reference: mean over the whole chunk (Tp x Da), then the clamp
    new_lp = [
        sum(_normal_lp(a[b][t][d], m[b][t][d], s[b][t][d]) for t in range(tp) for d in range(da)) / n for b in range(B)
    ]
    new_lp = [min(max(x, -5.0), 2.0) for x in new_lp]
    old_lp = [min(max(sum(o[b][t][d] for t in range(tp) for d in range(da)) / n, -5.0), 2.0) for b in range(B)]
    lr = [x - y for x, y in zip(new_lp, old_lp)]
    r = [math.exp(x) for x in lr]
    mu = sum(adv.tolist()) / B
    sd = math.sqrt(sum((x - mu) ** 2 for x in adv.tolist()) / (B - 1))
    an = [(x - mu) / (sd + 1e-8) for x in adv.tolist()]
    pg = sum(max(-A * ri, -A * min(max(ri, 0.8), 1.2)) for A, ri in zip(an, r)) / B
    ent = sum(0.5 + LOG_SQRT_2PI + math.log(s[b][t][d]) for b in range(B) for t in range(tp) for d in range(da))
    ent /= B * n
    vl = 0.5 * sum((vi - ri) ** 2 for vi, ri in zip(v.tolist(), ret.tolist())) / B
    assert stats["pg_loss"] == pytest.approx(pg, rel=1e-5)
    assert stats["entropy"] == pytest.approx(ent, rel=1e-5)
    assert stats["approx_kl"] == pytest.approx(sum((ri - 1) - x for ri, x in zip(r, lr)) / B, rel=1e-4)
    assert stats["clipfrac"] == pytest.approx(sum(abs(ri - 1) > 0.2 for ri in r) / B)
    assert loss.item() == pytest.approx(pg - 0.01 * ent + 0.5 * vl, rel=1e-5)


def test_gaussian_logprob_steps_option():
    g = torch.Generator().manual_seed(1)
    B, tp, da = 4, 4, 2
    mean, std = torch.rand(B, tp, da, generator=g), torch.full((B, tp, da), 0.3)
    actions = mean + 0.1 * torch.randn(B, tp, da, generator=g)
    old = torch.full((B, tp, da), 0.2)
    adv, z = torch.randn(B, generator=g), torch.zeros(B)

    def loss(acts, steps):
        cfg = PPOConfig(gaussian_logprob_steps=steps, clip_ploss_coef=10.0)
        out, _ = gaussian_ppo_loss(
            StubGaussian(mean, std), {"state": z.view(B, 1, 1)}, acts, old, adv, z, z, StubCritic(z), cfg, act_steps=2
        )
        return out.item()

    moved = actions.clone()
    moved[:, 2:] += 1.0
    assert loss(moved, "act") == loss(actions, "act")
    assert loss(moved, "horizon") != loss(actions, "horizon")


def test_sample_gaussian_clamps_noise():
    torch.manual_seed(0)
    policy = GaussianMLP(2, 3, 4, mlp_dims=[8], fixed_std=0.5)
    cond = {"state": torch.randn(4000, 1, 4)}
    a = sample_gaussian(policy, cond, randn_clip_value=1.0, generator=torch.Generator().manual_seed(0))
    mean, std = policy(cond)
    z = (a - mean) / std
    assert z.abs().max().item() == pytest.approx(1.0, abs=1e-5)
    assert torch.equal(sample_gaussian(policy, cond, deterministic=True), mean)

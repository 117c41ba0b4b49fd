import math

import pytest
import torch
from torch import nn

from dppo_robot.model.diffusion import DiffusionPolicy
from tests.conftest import build_small


class ConstEps(nn.Module):
    """A denoiser that predicts a fixed epsilon, so the sampler's arithmetic can be checked by hand."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor(value))

    def forward(self, x, t, cond):
        return torch.full_like(x, 1.0) * self.value


def cond(b=3, to=1, do=2):
    return {"state": torch.zeros(b, to, do)}


def test_ddim_eval_is_deterministic_and_x0_clipped():
    # A huge eps makes x0 = (x - sqrt(1-a) eps)/sqrt(a) far outside [-1, 1]; the last DDIM step
    # has alpha_prev = 1 so its output is the clamped x0 itself.
    p = DiffusionPolicy(ConstEps(50.0), 4, 2, denoising_steps=20, ddim_steps=5)
    x_T = torch.randn(3, 4, 2)
    a = p.sample(cond(), "eval", x_T=x_T).actions
    b = p.sample(cond(), "eval", x_T=x_T).actions
    assert torch.equal(a, b)
    assert torch.allclose(a, torch.full_like(a, -1.0))


def test_ddim_step_recomputes_eps_from_clipped_x0():
    p = DiffusionPolicy(ConstEps(50.0), 4, 2, denoising_steps=20, ddim_steps=5)
    x = torch.randn(3, 4, 2)
    mean, _ = p.p_mean_var(x, 0, cond(), p.actor, eta=None)
    a, a_prev = float(p.schedule.ddim_alphas[0]), float(p.schedule.ddim_alphas_prev[0])
    x0 = torch.full_like(x, -1.0)  # clamped
    eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
    want = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps
    assert torch.allclose(mean, want, atol=1e-5)


def test_ddpm_eval_noise_floor_and_no_noise_at_t0():
    p = DiffusionPolicy(ConstEps(0.1), 4, 2, denoising_steps=10)
    x_T = torch.randn(2, 4, 2)
    n = torch.randn(2, 10, 4, 2)
    base = p.sample(cond(2), "eval", x_T=x_T, step_noise=n).actions
    changed_last = n.clone()
    changed_last[:, -1] += 5.0  # the t = 0 step adds no noise in evaluation
    assert torch.equal(base, p.sample(cond(2), "eval", x_T=x_T, step_noise=changed_last).actions)
    changed_first = n.clone()
    changed_first[:, 0] += 1.0
    assert not torch.allclose(base, p.sample(cond(2), "eval", x_T=x_T, step_noise=changed_first).actions)
    # std >= 1e-3 at t > 0
    _, logvar = p.p_mean_var(x_T, 8, cond(2), p.actor, None)
    assert float(p.step_std(8, logvar, "eval").min()) >= 1e-3
    assert p.step_std(9, logvar, "eval") is None


def test_sampling_noise_is_clamped():
    p = DiffusionPolicy(ConstEps(0.0), 4, 2, denoising_steps=10, randn_clip_value=3.0, denoised_clip_value=None)
    x_T = torch.zeros(1, 4, 2)
    big = torch.zeros(1, 10, 4, 2)
    big[:, 0] = 100.0
    clamped = big.clone()
    clamped[:, 0] = 3.0
    a = p.sample(cond(1), "eval", x_T=x_T, step_noise=big).actions
    b = p.sample(cond(1), "eval", x_T=x_T, step_noise=clamped).actions
    assert torch.equal(a, b)


def test_actor_ft_serves_last_k_prime_steps():
    policy, *_ = build_small("mlp", ddim=False, ft=4)
    assert policy.n_steps == 10
    names = ["ft" if policy.network_for(i) is policy.actor_ft else "base" for i in range(10)]
    assert names == ["base"] * 6 + ["ft"] * 4
    assert not any(p.requires_grad for p in policy.actor.parameters())
    ddim, *_ = build_small("mlp", ddim=True, ft=5)
    assert all(ddim.network_for(i) is ddim.actor_ft for i in range(5))


def test_chain_and_log_probs_match_gaussian_formula():
    policy, *_ = build_small("mlp", ddim=True, ft=3)
    policy.min_logprob_denoising_std = 0.1
    b = 4
    c = {"state": torch.randn(b, 2, 5)}
    torch.manual_seed(0)
    s = policy.sample(c, "explore", return_chain=True)
    assert s.chain.shape == (b, 4, 4, 3)
    assert torch.equal(s.chain[:, -1], s.actions)
    lp = policy.chain_log_probs(c, s.chain)
    assert lp.shape == (b, 3, 4, 3)
    # Step by step, written out: DDIM eta=1 mean from the network's eps, std floored at 0.1.
    sch = policy.schedule
    for j in range(3):
        i = policy.first_ft_index + j
        x = s.chain[:, j]
        t = torch.full((b,), float(sch.ddim_t[i]))
        eps = policy.actor_ft(x, t, c)
        a, ap = sch.ddim_alphas[i], sch.ddim_alphas_prev[i]
        x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        sigma = (policy.eta * ((1 - ap) / (1 - a) * (1 - a / ap)).sqrt()).clamp(min=1e-10)
        mu = ap.sqrt() * x0 + (1 - ap - sigma**2).clamp(min=0).sqrt() * eps
        std = sigma.clamp(min=0.1)
        want = -((s.chain[:, j + 1] - mu) ** 2) / (2 * std**2) - torch.log(std) - 0.5 * math.log(2 * math.pi)
        assert torch.allclose(lp[:, j], want, atol=1e-4), j


def test_chain_log_probs_rejects_wrong_chain_length():
    policy, *_ = build_small("mlp", ddim=True, ft=3)
    with pytest.raises(ValueError, match="expected K'\\+1 = 4"):
        policy.chain_log_probs({"state": torch.randn(2, 2, 5)}, torch.randn(2, 3, 4, 3))


def test_bc_loss_decreases_on_a_fixed_batch():
    policy, *_ = build_small("mlp", ddim=True)
    for p in policy.actor.parameters():
        p.data.mul_(0.1)
    opt = torch.optim.Adam(policy.actor.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    c = {"state": torch.randn(64, 2, 5, generator=g)}
    a = torch.tanh(c["state"][:, -1, :3])[:, None].expand(64, 4, 3)
    first = None
    for _ in range(150):
        loss = policy.bc_loss(a, c, generator=g)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first

"""dppo_backward in row chunks gives the one-pass dppo_loss gradient and statistics."""

import copy

import pytest
import torch

from dppo_robot.rl.dppo_loss import dppo_backward, dppo_loss
from dppo_robot.rl.ppo_update import PPOConfig, build_optimizers, ppo_update
from tests.rl.test_dppo_loss import _small_policy
from tests.rl.test_ppo_update import _collect, _setup


def _minibatch(policy, B, seed=0):
    g = torch.Generator().manual_seed(seed)
    cond = {"state": torch.randn(B, 2, 3, generator=g)}
    with torch.no_grad():
        chains = policy.sample(cond, "explore", return_chain=True, generator=g).chain
        old = policy.chain_log_probs(cond, chains)
    idx = torch.randint(0, policy.ft_denoising_steps, (B,), generator=g)
    b = torch.arange(B)
    old = old[b, idx] + 0.3 * torch.randn(B, 4, 2, generator=g)  # ratios away from 1: some clipped
    adv = torch.randn(B, generator=g) * 3 + 1
    ret, val = torch.randn(B, generator=g), torch.randn(B, generator=g)
    return cond, chains[b, idx], chains[b, idx + 1], idx, old, adv, ret, val


def _grads(*modules):
    return {
        f"{i}.{n}": p.grad.clone() for i, m in enumerate(modules) for n, p in m.named_parameters() if p.grad is not None
    }


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        # minibatch-wide quantiles: computed per chunk they would differ
        {"clip_advantage_lower_quantile": 0.1, "clip_advantage_upper_quantile": 0.8, "clip_vloss_coef": 0.2},
        {"norm_adv": False, "reward_horizon": 4},
    ],
)
def test_chunked_backward_equals_one_pass(overrides):
    policy, critic, pcfg = _small_policy()
    cfg = PPOConfig(**overrides)
    B = 37
    args = _minibatch(policy, B)
    loss, want = dppo_loss(policy, *args, critic, cfg, pcfg.act_steps)  # cond, prev, next, idx, old, adv, ret, val
    policy.zero_grad(set_to_none=True)
    critic.zero_grad(set_to_none=True)
    loss.backward()
    g_one = _grads(policy, critic)
    assert want["clipfrac"] > 0  # the clipped branch is exercised
    for chunk in (8, 36):  # uneven chunks; one short final chunk
        policy.zero_grad(set_to_none=True)
        critic.zero_grad(set_to_none=True)
        got = dppo_backward(policy, *args, critic, cfg, pcfg.act_steps, chunk_rows=chunk)
        g = _grads(policy, critic)
        assert got.keys() == want.keys()
        for k in want:
            assert got[k] == pytest.approx(want[k], rel=1e-5, abs=1e-7), k
        assert g.keys() == g_one.keys()
        for k in g_one:
            torch.testing.assert_close(g[k], g_one[k], rtol=1e-4, atol=1e-7)


def test_chunked_advantage_statistics_are_minibatch_wide():
    """Normalising advantages per chunk instead of per minibatch would change the gradient."""
    policy, critic, pcfg = _small_policy()
    cfg = PPOConfig()
    B = 40
    cond, prev, nxt, idx, old, adv, ret, val = _minibatch(policy, B, seed=1)
    adv[:20] += 10.0  # the first chunk's advantages differ a lot from the second's
    dppo_backward(policy, cond, prev, nxt, idx, old, adv, ret, val, critic, cfg, pcfg.act_steps, chunk_rows=20)
    g_chunked = _grads(policy.actor_ft)
    policy.zero_grad(set_to_none=True)
    # what a per-chunk normalisation would give
    for s in (slice(0, 20), slice(20, 40)):
        loss, _ = dppo_loss(
            policy,
            {"state": cond["state"][s]},
            prev[s],
            nxt[s],
            idx[s],
            old[s],
            adv[s],
            ret[s],
            val[s],
            critic,
            cfg,
            pcfg.act_steps,
        )
        (loss * 0.5).backward()
    g_per_chunk = _grads(policy.actor_ft)
    assert any(not torch.allclose(g_chunked[k], g_per_chunk[k], rtol=1e-3, atol=1e-6) for k in g_chunked)


def test_ppo_update_chunked_equals_one_pass():
    policy, critic, cfg, buf = _setup("diffusion", 0, n_critic_warmup_itr=0)
    cfg.update_epochs = 2
    gen = torch.Generator().manual_seed(0)
    _collect(policy, critic, "diffusion", cfg, buf, None, gen)
    results = []
    for chunk in (0, 50):
        p, c = copy.deepcopy(policy), copy.deepcopy(critic)
        cfg.cpu_chunk_rows = chunk
        stats = ppo_update(p, c, buf, build_optimizers(p, c, cfg), cfg, 0, torch.Generator().manual_seed(5))
        results.append((stats, p, c))
    (s0, p0, c0), (s1, p1, c1) = results
    assert s0["n_minibatches"] == s1["n_minibatches"] == 8 and cfg.batch_size > 50  # chunks were used
    for k in ("pg_loss", "v_loss", "approx_kl", "clipfrac", "ratio"):
        assert s1[k] == pytest.approx(s0[k], rel=1e-4, abs=1e-6), k
    for (n, a), b in zip(
        list(p0.named_parameters()) + list(c0.named_parameters()), [*p1.parameters(), *c1.parameters()]
    ):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=n)
    assert any(not torch.equal(a, b) for a, b in zip(policy.actor_ft.parameters(), p0.actor_ft.parameters()))


def test_cpu_chunk_rows_validates():
    with pytest.raises(ValueError, match="cpu_chunk_rows"):
        PPOConfig(cpu_chunk_rows=-1).validate()

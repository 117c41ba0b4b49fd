import numpy as np
import pytest
import torch

from dppo_robot.model.policy_config import DenoiserConfig, DiffusionConfig, GaussianConfig, PolicyConfig
from dppo_robot.model.policy_factory import build_critic, build_diffusion_policy, build_gaussian_policy
from dppo_robot.rl.ppo_update import PPOConfig
from dppo_robot.rl.returns import RunningRewardScaler, gae
from dppo_robot.rl.rollout_buffer import RolloutBuffer

T, N, KP, TP, DA = 2, 3, 2, 2, 1


def _labelled_dppo_buffer() -> RolloutBuffer:
    """chains[t, n, j] = 100 t + 10 n + j, logprobs[t, n, k] = 100 t + 10 n + k, advantages 10 t + n."""
    buf = RolloutBuffer(
        T, N, obs_dim=1, cond_steps=1, horizon_steps=TP, action_dim=DA, act_steps=1, ft_denoising_steps=KP
    )
    for t in range(T):
        lab = torch.tensor([100.0 * t + 10 * n for n in range(N)])
        chain = (lab.view(N, 1) + torch.arange(KP + 1)).view(N, KP + 1, 1, 1).expand(N, KP + 1, TP, DA)
        buf.add({"state": lab.view(N, 1, 1)}, torch.zeros(N), torch.zeros(N), torch.zeros(N), chain=chain)
    lab = torch.tensor([[100.0 * t + 10 * n for n in range(N)] for t in range(T)])
    buf.logprobs.copy_((lab.view(T, N, 1) + torch.arange(KP)).view(T, N, KP, 1, 1).expand_as(buf.logprobs))
    buf.advantages.copy_(torch.tensor([[10.0 * t + n for n in range(N)] for t in range(T)]))
    buf.ready = True
    return buf


def test_dppo_minibatches_cover_every_step_and_denoising_pair_once():
    buf = _labelled_dppo_buffer()
    assert buf.n_samples == T * N * KP == 12
    seen = []
    for mb in buf.minibatches(4, torch.Generator().manual_seed(0)):
        assert mb.chains_prev.shape == (4, TP, DA) and mb.old_logprobs.shape == (4, TP, DA)
        for i in range(4):
            lab = mb.cond["state"][i, 0, 0].item()  # 100 t + 10 n
            k = mb.denoising_idx[i].item()
            assert mb.chains_prev[i, 0, 0].item() == lab + k
            assert mb.chains_next[i, 0, 0].item() == lab + k + 1
            assert mb.old_logprobs[i, 0, 0].item() == lab + k
            t, n = divmod(int(lab), 100)
            assert mb.advantages[i].item() == 10 * t + n // 10
            assert mb.step_idx[i].item() == t * N + n // 10
            seen.append((int(lab), k))
    assert sorted(seen) == sorted((100 * t + 10 * n, k) for t in range(T) for n in range(N) for k in range(KP))


def test_partial_last_minibatch_is_skipped_and_small_buffers_give_one():
    buf = _labelled_dppo_buffer()
    assert [len(mb.advantages) for mb in buf.minibatches(5)] == [5, 5]
    assert [len(mb.advantages) for mb in buf.minibatches(100)] == [12]


def test_gaussian_minibatches_over_env_steps():
    buf = RolloutBuffer(T, N, 1, 1, TP, DA, 1)
    for t in range(T):
        lab = torch.tensor([100.0 * t + 10 * n for n in range(N)])
        buf.add(
            {"state": lab.view(N, 1, 1)},
            torch.zeros(N),
            torch.zeros(N),
            torch.zeros(N),
            actions=lab.view(N, 1, 1).expand(N, TP, DA),
        )
    buf.ready = True
    assert buf.n_samples == 6
    mbs = list(buf.minibatches(3, torch.Generator().manual_seed(0)))
    assert len(mbs) == 2
    labels = sorted(mb.actions[i, 0, 0].item() for mb in mbs for i in range(3))
    assert labels == sorted(100.0 * t + 10 * n for t in range(T) for n in range(N))
    assert all(torch.equal(mb.cond["state"][:, 0, 0], mb.actions[:, 0, 0]) for mb in mbs)


def _filled(buf, truncated_env0_t0=False, terminated_env0_t0=False):
    buf.reset()
    for t in range(buf.n_steps):
        trunc = torch.zeros(buf.n_envs)
        term = torch.zeros(buf.n_envs)
        if t == 0:
            trunc[0] = float(truncated_env0_t0)
            term[0] = float(terminated_env0_t0)
        buf.add(
            {"state": torch.zeros(buf.n_envs, 1, 1)},
            torch.tensor([1.0, 2.0]),
            term,
            trunc,
            actions=torch.zeros(buf.n_envs, 1, 1),
        )
    buf.values.copy_(torch.tensor([[0.5, 0.2], [1.0, -1.0]]))
    buf.compute_advantages(torch.tensor([3.0, 4.0]), gamma=0.9, gae_lambda=0.8)
    return buf.advantages.clone(), buf.firsts.clone()


def test_truncation_bootstraps_through_the_next_stored_value_like_the_reference():
    buf = RolloutBuffer(2, 2, 1, 1, 1, 1, 1)
    adv_none, firsts_none = _filled(buf)
    adv_trunc, firsts_trunc = _filled(buf, truncated_env0_t0=True)
    adv_term, _ = _filled(buf, terminated_env0_t0=True)
    assert torch.equal(adv_trunc, adv_none)  # only terminated cuts GAE
    assert firsts_none[1, 0] == 0 and firsts_trunc[1, 0] == 1  # the scaler sees the truncation
    # terminated at t = 0 for env 0: A = r - V = 1 - 0.5
    assert adv_term[0, 0].item() == pytest.approx(0.5)
    assert adv_none[0, 0].item() != pytest.approx(0.5)


def test_compute_advantages_scales_rewards_before_gae():
    buf = RolloutBuffer(3, 2, 1, 1, 1, 1, 1)
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(3, 2))
    buf.reset(torch.tensor([1.0, 0.0]))
    for t in range(3):
        buf.add(
            {"state": torch.zeros(2, 1, 1)},
            torch.tensor(rewards[t]),
            torch.tensor([0.0, float(t == 1)]),
            torch.zeros(2),
            actions=torch.zeros(2, 1, 1),
        )
    buf.values.copy_(torch.tensor(rng.normal(size=(3, 2)), dtype=torch.float32))
    buf.compute_advantages(torch.tensor([0.3, -0.2]), 0.99, 0.95, RunningRewardScaler(2), reward_scale_const=2.0)
    firsts = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    scaled = RunningRewardScaler(2)(rewards, firsts) * 2.0
    adv, ret = gae(
        torch.tensor(scaled),
        buf.values.double(),
        torch.tensor([0.3, -0.2], dtype=torch.float64),
        buf.terminated.double(),
        0.99,
        0.95,
    )
    assert torch.allclose(buf.advantages.double(), adv, atol=1e-6)
    assert torch.allclose(buf.returns.double(), ret, atol=1e-6)


def _policy_cfg(kind):
    return PolicyConfig(
        kind=kind,
        obs_dim=3,
        action_dim=2,
        cond_steps=2,
        horizon_steps=3,
        act_steps=2,
        denoiser=DenoiserConfig(mlp_dims=[16, 16], time_dim=4),
        diffusion=DiffusionConfig(denoising_steps=6, ft_denoising_steps=3),
        gaussian=GaussianConfig(mlp_dims=[16], fixed_std=0.2, learn_fixed_std=True),
    )


@pytest.mark.parametrize("kind", ["diffusion", "gaussian"])
def test_old_logprobs_and_values_do_not_depend_on_chunking(kind):
    torch.manual_seed(0)
    pcfg = _policy_cfg(kind)
    policy = build_diffusion_policy(pcfg) if kind == "diffusion" else build_gaussian_policy(pcfg)
    critic = build_critic(pcfg, [8])
    kp = 3 if kind == "diffusion" else 0
    buf = RolloutBuffer(3, 4, 3, 2, 3, 2, 2, ft_denoising_steps=kp)
    for _ in range(3):
        cond = {"state": torch.randn(4, 2, 3)}
        if kind == "diffusion":
            buf.add(
                cond,
                torch.zeros(4),
                torch.zeros(4),
                torch.zeros(4),
                chain=policy.sample(cond, "explore", return_chain=True).chain,
            )
        else:
            buf.add(cond, torch.zeros(4), torch.zeros(4), torch.zeros(4), actions=torch.randn(4, 3, 2))
    buf.compute_values_and_logprobs(policy, critic, batch_size=5)
    lp, v = buf.logprobs.clone(), buf.values.clone()
    buf.compute_values_and_logprobs(policy, critic, batch_size=100)
    assert torch.allclose(lp, buf.logprobs, atol=1e-6) and torch.allclose(v, buf.values, atol=1e-6)
    assert lp.shape == ((3, 4, 3, 3, 2) if kind == "diffusion" else (3, 4, 3, 2))
    buf.compute_advantages(torch.zeros(4), 0.99, 0.95)
    mb = next(buf.minibatches(4))
    assert mb.cond["state"].shape == (4, 2, 3)


def test_image_observations_are_stored_and_indexed():
    buf = RolloutBuffer(2, 2, 1, 1, 1, 1, 1, image_shapes={"wrist": (3, 4, 4)})
    for t in range(2):
        img = torch.full((2, 1, 3, 4, 4), t, dtype=torch.uint8)
        img[1] += 10
        buf.add(
            {"state": torch.zeros(2, 1, 1), "images": {"wrist": img}},
            torch.zeros(2),
            torch.zeros(2),
            torch.zeros(2),
            actions=torch.zeros(2, 1, 1),
        )
    buf.map_images(lambda x: x + 1)
    buf.values.zero_()
    buf.compute_advantages(torch.zeros(2), 0.99, 0.95)
    mb = next(buf.minibatches(4, torch.Generator().manual_seed(0)))
    assert mb.cond["images"]["wrist"].dtype == torch.uint8
    expected = torch.tensor([1, 11, 2, 12], dtype=torch.uint8)[mb.step_idx]
    assert torch.equal(mb.cond["images"]["wrist"][:, 0, 0, 0, 0], expected)


def test_buffer_guards():
    buf = RolloutBuffer(1, 2, 1, 1, 1, 1, 1, ft_denoising_steps=1)
    with pytest.raises(RuntimeError):
        next(buf.minibatches(2))
    with pytest.raises(ValueError):
        buf.add({"state": torch.zeros(2, 1, 1)}, torch.zeros(2), torch.zeros(2), torch.zeros(2))
    buf.add(
        {"state": torch.zeros(2, 1, 1)}, torch.zeros(2), torch.zeros(2), torch.zeros(2), chain=torch.zeros(2, 2, 1, 1)
    )
    with pytest.raises(RuntimeError):
        buf.add(
            {"state": torch.zeros(2, 1, 1)},
            torch.zeros(2),
            torch.zeros(2),
            torch.zeros(2),
            chain=torch.zeros(2, 2, 1, 1),
        )
    with pytest.raises(ValueError):
        RolloutBuffer(1, 1, 1, 1, 2, 1, act_steps=3)
    assert PPOConfig().logprob_batch_size == 10000

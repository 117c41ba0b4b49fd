import math

import numpy as np
import pytest
import torch

from dppo_robot.rl.returns import RunningRewardScaler, firsts_from_dones, gae


def test_gae_three_steps_two_envs_with_termination():
    # env 0 terminates at t = 1 (no bootstrap, recursion cut), env 1 never ends.
    rewards = torch.tensor([[1.0, 0.0], [2.0, 1.0], [3.0, 2.0]])
    values = torch.tensor([[0.5, 1.0], [1.0, 2.0], [0.0, 1.5]])
    last = torch.tensor([4.0, 3.0])
    dones = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    adv, ret = gae(rewards, values, last, dones, gamma=0.9, lam=0.5)
    # env 0: d2 = 3 + .9*4 - 0 = 6.6; d1 = 2 - 1 = 1 (terminal); d0 = 1 + .9*1 - .5 = 1.4
    #        A = [1.4 + .45*1, 1, 6.6] = [1.85, 1.0, 6.6]
    # env 1: d2 = 2 + .9*3 - 1.5 = 3.2; d1 = 1 + .9*1.5 - 2 = .35; d0 = 0 + .9*2 - 1 = .8
    #        A2 = 3.2; A1 = .35 + .45*3.2 = 1.79; A0 = .8 + .45*1.79 = 1.6055
    expected = torch.tensor([[1.85, 1.6055], [1.0, 1.79], [6.6, 3.2]])
    assert torch.allclose(adv, expected, atol=1e-6)
    assert torch.allclose(ret, expected + values, atol=1e-6)
    assert adv.dtype == values.dtype


def test_gae_rejects_bad_shapes():
    with pytest.raises(ValueError):
        gae(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3), torch.zeros(3, 2), 0.9, 0.9)


def test_firsts_from_dones():
    done = np.array([[0, 1], [1, 0], [0, 0]])
    f = firsts_from_dones(done, np.array([1, 0]))
    assert f.tolist() == [[1, 0], [0, 1], [1, 0]]


def _rms_update(mean, var, count, batch):
    """The reference RunningMeanStd update, written out (M2 divided by count - 1)."""
    n = len(batch)
    bm = sum(batch) / n
    bv = sum((x - bm) ** 2 for x in batch) / n
    tot = count + n
    m2 = var * count + bv * n + (bm - mean) ** 2 * count * n / tot
    return mean + (bm - mean) * n / tot, m2 / (tot - 1), tot


def test_reward_scaler_two_calls_by_hand():
    s = RunningRewardScaler(n_envs=2, gamma=0.5)
    rewards = np.array([[1.0, 2.0], [3.0, -1.0]])  # [T, N]
    firsts = np.array([[1, 1], [0, 1]])
    out = s(rewards, firsts)
    # discounted sums: env0 1, 3 + .5*1 = 3.5; env1 2, then reset: -1
    rets = [1.0, 2.0, 3.5, -1.0]
    mean = sum(rets) / 4  # 1.375
    pop_var = sum((x - mean) ** 2 for x in rets) / 4  # 2.671875
    assert mean == 1.375 and pop_var == 2.671875
    var1 = (1.0 * 1e-4 + pop_var * 4 + mean**2 * 1e-4 * 4 / 4.0001) / (4.0001 - 1)
    assert np.allclose(out, rewards / math.sqrt(var1 + 1e-8), rtol=1e-12)
    # second call continues the running sums: env0 100 + .5*3.5, env1 0 + .5*(-1)
    out2 = s(np.array([[100.0, 0.0]]), np.array([[0, 0]]))
    m1, v1, c1 = _rms_update(0.0, 1.0, 1e-4, rets)
    assert math.isclose(v1, var1, rel_tol=1e-12)
    _, v2, c2 = _rms_update(m1, v1, c1, [101.75, -0.5])
    assert np.allclose(out2, np.array([[100.0, 0.0]]) / math.sqrt(v2 + 1e-8), rtol=1e-12)
    assert s.ret.tolist() == [101.75, -0.5]
    assert math.isclose(s.ret_rms.count, c2)


def test_reward_scaler_clips_at_ten():
    # one rare reward: the std of the (mostly zero) returns is tiny compared to it
    r = np.zeros((1000, 1))
    r[-1, 0] = 5.0
    f = np.zeros((1000, 1))
    f[0] = 1
    out = RunningRewardScaler(1)(r, f)
    assert out[-1, 0] == 10.0 and np.all(out[:-1] == 0)


def test_reward_scaler_accepts_tensors():
    out = RunningRewardScaler(2)(torch.ones(3, 2), torch.zeros(3, 2))
    assert isinstance(out, torch.Tensor) and out.shape == (3, 2) and out.dtype == torch.float32


def test_reward_scaler_resume_is_exact():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    fa, fb = (rng.random((5, 3)) < 0.3).astype(float), (rng.random((4, 3)) < 0.3).astype(float)
    s1 = RunningRewardScaler(3)
    s1(a, fa)
    expected = s1(b, fb)
    s2 = RunningRewardScaler(3)
    s2(a, fa)
    s3 = RunningRewardScaler(3)
    s3.load_state_dict(s2.state_dict())
    assert np.array_equal(s3(b, fb), expected)
    with pytest.raises(ValueError):
        RunningRewardScaler(4).load_state_dict(s2.state_dict())

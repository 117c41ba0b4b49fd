import math

import pytest
import torch

from dppo_robot.model.schedule import NoiseSchedule, cosine_beta_schedule, ddim_timesteps


def hand_alphas_cumprod(k: int, s: float = 0.008) -> list[float]:
    """The cosine schedule written out from its definition (Nichol & Dhariwal) on the reference's
    grid: K + 1 points spaced evenly over [0, K + 1] (np.linspace(0, steps, steps))."""
    steps = k + 1
    xs = [i * steps / (steps - 1) for i in range(steps)]
    f = [math.cos(((x / steps) + s) / (1 + s) * math.pi / 2) ** 2 for x in xs]
    f = [v / f[0] for v in f]
    betas = [min(max(1 - f[i + 1] / f[i], 0.0), 0.999) for i in range(k)]
    out, acc = [], 1.0
    for b in betas:
        acc *= 1 - b
        out.append(acc)
    return out


@pytest.mark.parametrize("k", [5, 20, 100])
def test_cosine_schedule_matches_definition(k):
    ac = torch.cumprod(1 - cosine_beta_schedule(k), 0)
    assert ac.shape == (k,)
    assert torch.allclose(ac, torch.tensor(hand_alphas_cumprod(k)), atol=1e-6)
    assert float(cosine_beta_schedule(k).max()) == pytest.approx(0.999)  # the last beta hits the clip


def test_ddim_timesteps_hand_values():
    assert ddim_timesteps(100, 5) == [80, 60, 40, 20, 0]
    assert ddim_timesteps(20, 5) == [16, 12, 8, 4, 0]
    assert ddim_timesteps(10, 10) == list(range(9, -1, -1))
    with pytest.raises(ValueError, match="ddim_steps must be in"):
        ddim_timesteps(10, 11)


def test_ddim_alphas_follow_timesteps():
    s = NoiseSchedule(100, 5)
    ac = s.alphas_cumprod
    assert [int(t) for t in s.ddim_t] == [80, 60, 40, 20, 0]
    assert torch.allclose(s.ddim_alphas, ac[[80, 60, 40, 20, 0]])
    # alpha_prev of each step is alpha of the next (less noisy) step; the last is 1.
    assert torch.allclose(s.ddim_alphas_prev, torch.cat([ac[[60, 40, 20, 0]], torch.ones(1)]))


def test_ddpm_logvar_is_clipped_at_1e20():
    s = NoiseSchedule(20)
    # posterior variance at t = 0 is exactly 0; the reference clips it at 1e-20 before the log
    assert float(s.ddpm_logvar_clipped[0]) == pytest.approx(math.log(1e-20), rel=1e-6)
    assert s.timesteps() == list(range(19, -1, -1))

import numpy as np
import pytest
import torch

from dppo_robot.model.normalization import Normalization
from dppo_robot.model.normalization_module import NormalizationModule


def test_robomimic_and_furniture_formulas():
    omin, omax = np.array([0.0, -1.0]), np.array([2.0, 1.0])
    rob = Normalization(omin, omax, np.array([-1.0]), np.array([3.0]), obs_eps=1e-6)
    obs = np.array([1.0, 5.0], np.float32)
    # robomimic: 2 * ((obs - min) / (max - min + 1e-6) - 0.5), no clip
    want = 2 * ((obs - omin) / (omax - omin + 1e-6) - 0.5)
    assert np.allclose(rob.normalize_obs(obs), want, atol=1e-6)
    fur = Normalization(omin, omax, np.array([-1.0]), np.array([3.0]), obs_clip=5.0)
    assert np.allclose(fur.normalize_obs(np.array([1.0, 50.0])), [0.0, 5.0])
    assert np.allclose(rob.denormalize_action(np.array([-1.0, 0.0, 1.0])[:, None]).ravel(), [-1.0, 1.0, 3.0])


def test_torch_module_matches_numpy():
    rng = np.random.default_rng(0)
    n = Normalization(
        rng.uniform(-1, 0, 4), rng.uniform(1, 2, 4), rng.uniform(-1, 0, 2), rng.uniform(1, 2, 2), 1e-6, 5.0
    )
    m = NormalizationModule(n)
    obs = rng.normal(size=(3, 4)).astype(np.float32) * 4
    assert np.allclose(m.normalize_obs(torch.from_numpy(obs)).numpy(), n.normalize_obs(obs), atol=1e-6)
    a = rng.uniform(-1, 1, (3, 2)).astype(np.float32)
    assert np.allclose(m.denormalize_action(torch.from_numpy(a)).numpy(), n.denormalize_action(a), atol=1e-6)
    assert np.allclose(n.normalize_action(n.denormalize_action(a)), a, atol=1e-5)


def test_fit_handles_constant_columns_and_round_trips():
    obs = np.stack([np.linspace(0, 1, 10), np.full(10, 3.0)], 1)
    n = Normalization.fit(obs, obs[:, :1])
    assert np.all(np.isfinite(n.normalize_obs(obs)))
    assert n.normalize_obs(obs)[:, 1].tolist() == [0.0] * 10
    again = Normalization.from_dict(n.to_dict())
    assert np.array_equal(again.obs_min, n.obs_min) and again.obs_clip == n.obs_clip


def test_bad_statistics_are_named():
    with pytest.raises(ValueError, match="obs range is empty or inverted at dims \\[1\\]"):
        Normalization(np.zeros(2), np.array([1.0, -1.0]), np.zeros(1), np.ones(1))
    with pytest.raises(ValueError, match="action_max has non-finite"):
        Normalization(np.zeros(2), np.ones(2), np.zeros(1), np.array([np.nan]))
    with pytest.raises(ValueError, match="unknown fields \\['obs_mean'\\]"):
        Normalization.from_dict({"obs_mean": [0.0]})

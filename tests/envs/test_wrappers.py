"""ObsHistory padding, ActionChunk reward sums / early stop / success, normalisation round trip."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import dppo_robot.envs  # noqa: F401  (registers tasks)
from dppo_robot.envs import (
    ActionChunk,
    NormalizeObsAction,
    ObsHistory,
    default_task_config,
    make_chunked_env,
    make_env,
)
from dppo_robot.envs import toy_multimodal as T
from dppo_robot.model.normalization import Normalization
from tests.conftest import small_norm

UP = np.array([0.0, 1.0], np.float32)


def test_obs_history_pads_with_first_obs():
    env = ObsHistory(make_env(default_task_config("reach2d")), 3)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3, 4) and env.observation_space.shape == (3, 4)
    assert np.array_equal(obs[0], obs[1]) and np.array_equal(obs[1], obs[2])
    first = obs[2].copy()
    obs1, *_ = env.step(np.array([1.0, 0.0], np.float32))
    np.testing.assert_array_equal(obs1[:2], [first, first])
    assert not np.array_equal(obs1[2], first)
    obs2, *_ = env.step(np.array([1.0, 0.0], np.float32))
    np.testing.assert_array_equal(obs2[:2], obs1[1:])
    obs3, _ = env.reset(seed=1)  # history cleared on reset
    assert np.array_equal(obs3[0], obs3[2]) and not np.array_equal(obs3[0], obs2[2])


class _DictEnv(gym.Env):
    observation_space = gym.spaces.Dict(
        {"state": gym.spaces.Box(-1, 1, (2,), np.float32), "image_cam": gym.spaces.Box(0, 255, (3, 8, 8), np.uint8)}
    )
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def _obs(self):
        return {"state": np.full(2, self.t, np.float32), "image_cam": np.full((3, 8, 8), self.t, np.uint8)}

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return self._obs(), {"success": False}

    def step(self, action):
        self.t += 1
        return self._obs(), 1.0, False, self.t >= 5, {"success": self.t == 2}


def test_obs_history_and_chunk_on_dict_obs():
    env = ActionChunk(ObsHistory(_DictEnv(), 2), 3)
    obs, _ = env.reset()
    assert obs["state"].shape == (2, 2) and obs["image_cam"].shape == (2, 3, 8, 8)
    assert obs["image_cam"].dtype == np.uint8
    obs, r, term, trunc, info = env.step(np.zeros((3, 1), np.float32))
    assert obs["state"][:, 0].tolist() == [2, 3] and r == 3.0 and info == {"success": True, "steps": 3}
    obs, r, term, trunc, info = env.step(np.zeros((3, 1), np.float32))
    assert trunc and not term and info["steps"] == 2 and r == 2.0 and not info["success"]
    assert obs["state"][:, 0].tolist() == [4, 5]


def test_chunk_sums_rewards_like_single_steps():
    cfg = default_task_config("reach2d", reward="dense", act_steps=4)
    chunked = make_chunked_env(cfg)
    single = make_env(cfg)
    chunked.reset(seed=3)
    single.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(3):
        chunk = rng.uniform(-0.3, 0.3, (4, 2)).astype(np.float32)
        obs, r, term, trunc, info = chunked.step(chunk)
        expect = 0.0
        for a in chunk:
            o, ri, *_ = single.step(a)
            expect += ri
        assert r == pytest.approx(expect) and info["steps"] == 4
        np.testing.assert_array_equal(obs[-1], o)


def test_chunk_stops_early_on_collision_and_takes_first_ta_of_tp():
    cfg = default_task_config("reach2d", act_steps=4, cond_steps=1)
    env = make_chunked_env(cfg)
    env.reset(seed=0)
    y0 = env.unwrapped.position[1]
    # Tp = 6 rows: only the first 4 run.
    obs, r, term, trunc, info = env.step(np.tile(UP, (6, 1)))
    assert info["steps"] == 4 and env.unwrapped.position[1] == pytest.approx(y0 + 0.4)
    # From y = -0.3 straight up, the second step ends inside the central block.
    env.unwrapped.x, env.unwrapped.y = 0.0, -0.3
    obs, r, term, trunc, info = env.step(np.tile(UP, (4, 1)))
    assert term and info["collision"] and not info["success"] and info["steps"] == 2 and r == 0.0


def test_chunk_success_and_reward():
    cfg = default_task_config("reach2d", act_steps=4)
    env = make_chunked_env(cfg)
    env.reset(seed=0)
    env.unwrapped.x, env.unwrapped.y = 0.0, 1.0 - T.GOAL_RADIUS - 0.15
    obs, r, term, trunc, info = env.step(np.tile(UP, (4, 1)))
    assert term and info["success"] and r == 1.0 and info["steps"] == 2


def test_chunk_rejects_bad_shapes():
    env = make_chunked_env(default_task_config("reach2d", act_steps=4))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\[T >= 4, 2\]"):
        env.step(np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"\[T >= 4, 2\]"):
        env.step(np.zeros((4, 3), np.float32))


class _Recorder(gym.Wrapper):
    def step(self, action):
        self.last_action = np.array(action)
        return self.env.step(action)


def test_normalize_obs_action_round_trip():
    cfg = default_task_config("reach2d")
    norm = Normalization(
        np.array([-1.5, -1.5, -2.0, -2.0]), np.array([1.5, 1.5, 2.0, 3.0]), np.array([-2.0, -0.5]), np.array([2.0, 1.5])
    )
    raw = make_env(cfg)
    rec = _Recorder(raw)
    env = NormalizeObsAction(rec, norm)
    twin = make_env(cfg)
    obs, _ = env.reset(seed=4)
    raw_obs, _ = twin.reset(seed=4)
    np.testing.assert_allclose(obs, norm.normalize_obs(raw_obs), rtol=1e-6)
    a_n = np.array([0.25, -0.5], np.float32)
    obs, *_ = env.step(a_n)
    np.testing.assert_allclose(rec.last_action, norm.denormalize_action(a_n))
    np.testing.assert_allclose(norm.normalize_action(rec.last_action), a_n, atol=1e-6)
    raw_obs, *_ = twin.step(norm.denormalize_action(a_n))
    np.testing.assert_allclose(obs, norm.normalize_obs(raw_obs), rtol=1e-6)
    assert env.action_space.low.tolist() == [-1, -1]
    with pytest.raises(ValueError, match="obs_dim 5"):
        NormalizeObsAction(make_env(cfg), small_norm(5, 2))


def test_env_workers_import_no_torch():
    """Normalisation is numpy-only, so env worker processes never load torch (1.6 s, 220 MB each)."""
    import subprocess
    import sys

    code = "import sys, dppo_robot.envs, dppo_robot.envs.vector_env; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"

"""Fast step path of lift/can/square against robosuite's own env.step: trajectories, observations, rewards."""

from __future__ import annotations

import numpy as np
import pytest

from dppo_robot.data.demonstrators import make_demonstrator
from dppo_robot.envs.registry import default_task_config, make_env
from dppo_robot.envs.robomimic_tasks import TASKS, RobosuiteTaskEnv

TOL = 1e-6  # max abs difference allowed between the two paths (joint positions, observations)


def _pair(name: str, **cfg_kw) -> tuple[RobosuiteTaskEnv, RobosuiteTaskEnv]:
    """(stock, fast) envs of one task, same config and seed."""
    cfg = default_task_config(name, **cfg_kw)
    return RobosuiteTaskEnv(TASKS[name], cfg, 0, fast_step=False), RobosuiteTaskEnv(TASKS[name], cfg, 0)


def _free_space_actions(n: int) -> np.ndarray:
    """A fixed sequence: circles in x/y, a slow rise, wrist rotations, gripper toggled every 10 steps."""
    t = np.arange(n)
    a = np.zeros((n, 7))
    a[:, 0] = 0.5 * np.cos(2 * np.pi * t / 25)
    a[:, 1] = 0.5 * np.sin(2 * np.pi * t / 25)
    a[:, 2] = 0.15
    a[:, 3] = 0.3 * np.sin(2 * np.pi * t / 20)
    a[:, 4] = 0.3 * np.cos(2 * np.pi * t / 30)
    a[:, 5] = 0.4 * np.sin(2 * np.pi * t / 40)
    a[:, 6] = np.where((t // 10) % 2 == 0, 1.0, -1.0)
    return a


def _robot_contacts(env: RobosuiteTaskEnv) -> int:
    """Number of active contacts that involve a body of the robot (arm or gripper)."""
    m, d, _ = env.physics_handles()
    robot_root = m.body_rootid[m.site_bodyid[env.env.robots[0].eef_site_id["right"]]]
    bodies = m.geom_bodyid[np.asarray(d.contact.geom[: d.ncon], int)]
    return int(np.any(m.body_rootid[bodies] == robot_root, axis=1).sum())


def _qpos(env: RobosuiteTaskEnv) -> np.ndarray:
    return np.array(env.sim.data.qpos)


@pytest.mark.parametrize("name", ["lift", "can", "square"])
def test_fast_step_matches_stock_in_free_space(name):
    stock, fast = _pair(name, reward="dense")
    try:
        o_s, _ = stock.reset(seed=7)
        o_f, _ = fast.reset(seed=7)
        np.testing.assert_array_equal(o_s, o_f)
        eef0 = o_s[:3].copy()
        rs_s, rs_f = stock.env, fast.env
        grip = []
        worst = 0.0
        for a in _free_space_actions(50):
            o_s, r_s, _, _, i_s = stock.step(a)
            o_f, r_f, _, _, i_f = fast.step(a)
            assert _robot_contacts(stock) == 0  # free space: the comparison is about the controller
            worst = max(worst, float(np.abs(_qpos(stock) - _qpos(fast)).max()))
            np.testing.assert_allclose(o_f, o_s, rtol=0, atol=TOL)
            assert r_f == pytest.approx(r_s, abs=TOL) and i_f == i_s
            # the robosuite observables the fast path samples (and those they read) hold the stock values
            for key, _ in fast._fast.observables:
                np.testing.assert_allclose(rs_f._obs_cache[key], rs_s._obs_cache[key], rtol=0, atol=TOL, err_msg=key)
            grip.append(o_s[7] - o_s[8])
        assert worst <= TOL, worst
        assert rs_f.timestep == rs_s.timestep == 50 and rs_f.cur_time == pytest.approx(rs_s.cur_time)
        # the sequence exercised the controller: the hand moved and the fingers opened and closed
        assert np.linalg.norm(o_s[:3] - eef0) > 0.05
        assert max(grip) - min(grip) > 0.02
    finally:
        stock.close()
        fast.close()


def test_fast_step_matches_stock_through_a_lift():
    """With contacts (grasp and lift of the cube) the two paths still agree to rounding."""
    stock, fast = _pair("lift")
    try:
        o_s, _ = stock.reset(seed=5)
        fast.reset(seed=5)
        demo = make_demonstrator("lift")
        demo.reset(stock, np.random.default_rng(0))
        contacts, worst, success_at = 0, 0.0, None
        for t in range(60):
            a = demo.act(o_s)
            o_s, _, _, _, i_s = stock.step(a)
            o_f, _, _, _, i_f = fast.step(a)
            contacts = max(contacts, _robot_contacts(stock))
            worst = max(worst, float(np.abs(_qpos(stock) - _qpos(fast)).max()))
            assert i_s["success"] == i_f["success"]
            if success_at is None and i_s["success"]:
                success_at = t
        assert worst <= TOL, worst
        assert contacts > 0 and success_at is not None  # the fingers touched the cube and lifted it
    finally:
        stock.close()
        fast.close()


def test_fast_step_pixels_match_stock():
    stock, fast = _pair("lift", cameras=["agentview", "robot0_eye_in_hand"], image_size=32)
    try:
        o_s, _ = stock.reset(seed=1)
        o_f, _ = fast.reset(seed=1)
        for a in _free_space_actions(3):
            o_s, *_ = stock.step(a)
            o_f, *_ = fast.step(a)
            assert set(o_f) == set(o_s) == {"state", "image_agentview", "image_robot0_eye_in_hand"}
            np.testing.assert_allclose(o_f["state"], o_s["state"], rtol=0, atol=TOL)
            for k in ("image_agentview", "image_robot0_eye_in_hand"):
                assert o_f[k].shape == (3, 32, 32) and o_f[k].std() > 0
                np.testing.assert_array_equal(o_f[k], o_s[k], err_msg=k)
    finally:
        stock.close()
        fast.close()


def test_fast_step_is_deterministic_across_resets():
    """A reset rebinds the controllers robosuite recreates: an env reused after a reset steps like a fresh one."""
    actions = _free_space_actions(12)
    used = make_env(default_task_config("square"), seed=0)
    fresh = make_env(default_task_config("square"), seed=0)
    try:
        assert used.unwrapped._fast is not None  # the fast path is the default
        used.reset(seed=1)
        for a in actions[:5]:
            used.step(a)
        o_u, _ = used.reset(seed=2)
        o_n, _ = fresh.reset(seed=2)
        np.testing.assert_array_equal(o_u, o_n)
        for a in actions:
            o_u, *_ = used.step(a)
            o_n, *_ = fresh.step(a)
            np.testing.assert_array_equal(o_u, o_n)
        np.testing.assert_array_equal(_qpos(used.unwrapped), _qpos(fresh.unwrapped))
    finally:
        used.close()
        fresh.close()

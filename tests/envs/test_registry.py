"""Task registry, TaskConfig, IO specs and the raw task envs (dims, layout, seeding, speed)."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

import dppo_robot.envs  # noqa: F401  (registers tasks)
from dppo_robot.envs import (
    TaskConfig,
    UnknownTaskError,
    default_task_config,
    list_tasks,
    make_env,
    register_task,
    task_io_spec,
)
from dppo_robot.envs.toy_multimodal import build_reach2d, reach2d_io_spec
from dppo_robot.typed_config import ConfigError, load_yaml


def test_import_does_not_load_robosuite_or_torch():
    import subprocess

    code = "import sys, dppo_robot.envs; print(sorted(m for m in ('robosuite', 'torch', 'mujoco') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_known_tasks_and_unknown_name():
    assert {"lift", "can", "square", "halfcheetah", "reach2d"} <= set(list_tasks())
    with pytest.raises(UnknownTaskError, match=r"unknown task 'lfit'; known tasks: .*lift"):
        make_env(TaskConfig(name="lfit"))
    with pytest.raises(UnknownTaskError, match="known tasks"):
        task_io_spec(TaskConfig(name="nope"))


@pytest.mark.parametrize(
    ("name", "do", "da", "hz", "steps"),
    [
        ("lift", 19, 7, 20, 300),
        ("can", 23, 7, 20, 300),
        ("square", 23, 7, 20, 400),
        ("halfcheetah", 17, 6, 20, 1000),
        ("reach2d", 4, 2, 10, 40),
    ],
)
def test_spec_dims(name, do, da, hz, steps):
    cfg = default_task_config(name)
    spec = task_io_spec(cfg)
    assert (spec.obs_dim, spec.action_dim, spec.control_hz) == (do, da, hz)
    assert cfg.max_episode_steps == steps
    assert all(s.units for s in spec.obs)


def test_pixel_spec():
    spec = task_io_spec(default_task_config("square", cameras=["agentview", "robot0_eye_in_hand"]))
    assert spec.obs_dim == 9 and [c.name for c in spec.cameras] == ["agentview", "robot0_eye_in_hand"]
    assert spec.cameras[0].height == 96


def test_register_rules():
    with pytest.raises(ValueError, match="already registered"):
        register_task("reach2d", lambda c, s: None, reach2d_io_spec)
    with pytest.raises(ValueError, match="unknown TaskConfig fields"):
        register_task("tmp_task", build_reach2d, reach2d_io_spec, defaults={"horizon": 3})


def test_task_config_validation_and_yaml(tmp_path):
    with pytest.raises(ValueError, match="act_steps"):
        TaskConfig(act_steps=0).validate()
    with pytest.raises(ValueError, match="identifier"):
        TaskConfig(cameras=["agent view"]).validate()
    p = tmp_path / "task.yaml"
    p.write_text("name: square\nmax_episode_steps: 400\ncameras: [agentview]\nreward: sparse\n")
    cfg = load_yaml(TaskConfig, p)
    assert cfg.cameras == ["agentview"] and cfg.max_episode_steps == 400
    p.write_text("name: square\nmax_episode_step: 400\n")
    with pytest.raises(ConfigError, match="did you mean 'max_episode_steps'"):
        load_yaml(TaskConfig, p)
    p.write_text("name: square\nreward: shaped\n")
    with pytest.raises(ConfigError, match="reward"):
        load_yaml(TaskConfig, p)


def test_fixed_rate_tasks_reject_other_rates():
    with pytest.raises(ValueError, match="reach2d runs at 10 Hz"):
        make_env(default_task_config("reach2d", control_hz=20.0))
    with pytest.raises(ValueError, match="halfcheetah runs at 20 Hz"):
        make_env(default_task_config("halfcheetah", control_hz=10.0))
    with pytest.raises(ValueError, match="dense reward only"):
        make_env(default_task_config("halfcheetah", reward="sparse"))


@pytest.mark.parametrize("name", ["lift", "can", "square"])
def test_robosuite_tasks(name):
    cfg = default_task_config(name, max_episode_steps=5)
    env = make_env(cfg, seed=0)
    try:
        obs, info = env.reset(seed=3)
        do = task_io_spec(cfg).obs_dim
        assert obs.shape == (do,) and obs.dtype == np.float32 and info["success"] is False
        assert env.action_space.shape == (7,) and env.action_space.dtype == np.float32
        rs = env.unwrapped.env
        eef = np.asarray(rs.sim.data.site_xpos[rs.robots[0].eef_site_id["right"]])
        np.testing.assert_allclose(obs[:3], eef, atol=1e-5)
        if name == "lift":  # robosuite <= 1.4 layout: gripper_to_cube_pos = eef - cube
            cube = rs.sim.data.body_xpos[rs.cube_body_id]
            np.testing.assert_allclose(obs[9:12], cube, atol=1e-5)
            np.testing.assert_allclose(obs[16:19], eef - cube, atol=1e-5)
        else:  # object block starts with the object position
            obj = rs.sim.data.body_xpos[rs.obj_body_id["Can" if name == "can" else "SquareNut"]]
            np.testing.assert_allclose(obs[9:12], obj, atol=1e-5)
        again, _ = env.reset(seed=3)
        np.testing.assert_array_equal(obs, again)  # seeded resets repeat
        other, _ = env.reset(seed=4)
        assert not np.array_equal(obs, other)
        for _t in range(5):
            obs, r, term, trunc, info = env.step(np.zeros(7, np.float32))
            assert obs.shape == (do,) and r == 0.0 and not term and isinstance(info["success"], bool)
        assert trunc  # time limit
    finally:
        env.close()


def test_halfcheetah():
    env = make_env(default_task_config("halfcheetah", max_episode_steps=3))
    obs, info = env.reset(seed=0)
    assert obs.shape == (17,) and obs.dtype == np.float32 and env.action_space.shape == (6,)
    for _ in range(3):
        obs, r, term, trunc, info = env.step(np.zeros(6, np.float32))
    assert trunc and not term and info["success"] is False and isinstance(r, float)


def test_reach2d_speed_and_noise():
    env = make_env(default_task_config("reach2d"))
    env.reset(seed=0)
    a = np.array([0.05, 0.0], np.float32)
    n, t0 = 5000, time.perf_counter()
    for _ in range(n):
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    assert n / (time.perf_counter() - t0) > 10_000
    noisy = make_env(default_task_config("reach2d", obs_noise_std=0.1))
    o1, _ = noisy.reset(seed=0)
    o2, _ = make_env(default_task_config("reach2d")).reset(seed=0)
    assert 0 < np.abs(o1 - o2).max() < 1.0


def test_square_pixels():
    cfg = default_task_config("square", cameras=["agentview", "robot0_eye_in_hand"], image_size=32, max_episode_steps=2)
    env = make_env(cfg, seed=0)
    try:
        obs, _ = env.reset(seed=0)
        assert set(obs) == {"state", "image_agentview", "image_robot0_eye_in_hand"}
        assert obs["state"].shape == (9,) and obs["state"].dtype == np.float32
        for k in ("image_agentview", "image_robot0_eye_in_hand"):
            assert obs[k].shape == (3, 32, 32) and obs[k].dtype == np.uint8 and obs[k].std() > 0
        assert env.observation_space["image_agentview"].shape == (3, 32, 32)
        obs, *_ = env.step(np.zeros(7, np.float32))
        assert obs["image_agentview"].shape == (3, 32, 32)
    finally:
        env.close()

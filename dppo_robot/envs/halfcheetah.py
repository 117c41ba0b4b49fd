"""gymnasium HalfCheetah-v5 as task "halfcheetah" (Do 17, Da 6, dense reward, 20 Hz).

The reference's gym tasks use d4rl's HalfCheetah-v2 (same 17/6 layout: root z, root angle,
6 joint angles, then root x/z velocity, root angular velocity, 6 joint velocities); v5 is the
maintained MuJoCo-3 version. There is no success condition: info["success"] is always False.
The episode never terminates; the time limit (1000 steps by default) truncates it.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from dppo_robot.envs.registry import register_task
from dppo_robot.envs.task_config import TaskConfig
from dppo_robot.io_spec import IOSpec, Slice

FRAME_SKIP = 5
TIMESTEP_S = 0.01  # half_cheetah.xml
CONTROL_HZ = 1.0 / (FRAME_SKIP * TIMESTEP_S)  # 20 Hz


class HalfCheetahTaskEnv(gym.Env):
    """HalfCheetah-v5 with float32 obs/actions and info["success"]."""

    def __init__(self, cfg: TaskConfig, seed: int | None = None) -> None:
        from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

        if cfg.cameras:
            raise ValueError("halfcheetah has no camera variant; set cameras: []")
        if cfg.reward != "dense":
            raise ValueError("halfcheetah has a dense reward only; set reward: dense")
        self.env = HalfCheetahEnv(frame_skip=FRAME_SKIP)
        if abs(1.0 / self.env.dt - cfg.control_hz) > 1e-6:
            raise ValueError(f"halfcheetah runs at {1.0 / self.env.dt:g} Hz; control_hz is {cfg.control_hz:g}")
        self.cfg = cfg
        self._rng = np.random.default_rng(seed)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (17,), np.float32)
        low, high = self.env.action_space.low, self.env.action_space.high
        self.action_space = gym.spaces.Box(low.astype(np.float32), high.astype(np.float32), (6,), np.float32)

    def _obs(self, obs: np.ndarray) -> np.ndarray:
        o = np.asarray(obs, np.float32)
        if self.cfg.obs_noise_std > 0:
            o = o + self._rng.normal(0.0, self.cfg.obs_noise_std, o.shape).astype(np.float32)
        return o

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        obs, _ = self.env.reset(seed=int(self._rng.integers(2**31 - 1)))
        return self._obs(obs), {"success": False}

    def step(self, action):
        a = np.asarray(action, np.float64).reshape(-1)
        if a.shape != (6,):
            raise ValueError(f"halfcheetah: action must have 6 values, got shape {np.shape(action)}")
        obs, reward, terminated, _, info = self.env.step(a)
        info = {**info, "success": False}
        return self._obs(obs), float(reward), bool(terminated), False, info

    def render(self):
        return None

    def close(self) -> None:
        self.env.close()


def build_halfcheetah(cfg: TaskConfig, seed: int | None) -> gym.Env:
    return HalfCheetahTaskEnv(cfg, seed)


def halfcheetah_io_spec(cfg: TaskConfig) -> IOSpec:
    obs = [
        Slice("root_z", 1, "m", "world", "torso height"),
        Slice("root_angle_y", 1, "rad", "world", "torso pitch"),
        Slice("joint_pos", 6, "rad", "", "bthigh, bshin, bfoot, fthigh, fshin, ffoot"),
        Slice("root_vel_xz", 2, "m/s", "world"),
        Slice("root_angvel_y", 1, "rad/s", "world"),
        Slice("joint_vel", 6, "rad/s", ""),
    ]
    act = [Slice("joint_torque", 6, "normalized", "", "motor commands in [-1, 1] (times the gear)")]
    return IOSpec(obs, act, float(cfg.control_hz))


register_task(
    "halfcheetah",
    build_halfcheetah,
    halfcheetah_io_spec,
    defaults={"max_episode_steps": 1000, "cond_steps": 1, "act_steps": 4, "control_hz": CONTROL_HZ, "reward": "dense"},
    description="gymnasium HalfCheetah-v5 (Do 17, Da 6), dense reward",
)

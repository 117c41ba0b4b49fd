"""reach2d: a tiny pure-python 2D reaching task with two ways around a wall (for CI learning tests).

Geometry (metres, say): a point agent starts at START + U(-START_JITTER, START_JITTER)^2 near
(0, -1); the goal is the disc of radius GOAL_RADIUS around (0, 1). A wall band
|y| <= WALL_HALF_THICKNESS blocks the way except for two gaps, GAP_INNER_X < |x| < GAP_OUTER_X
(one left, one right): the central block |x| <= GAP_INNER_X and the outer walls
|x| >= GAP_OUTER_X are obstacles. Positions are clipped to the arena |x|, |y| <= ARENA.

Step: action a in [-1, 1]^2 (clipped) moves the agent by a * MAX_STEP (a velocity command).
Touching an obstacle (end point or midpoint of the move inside it) terminates the episode as a
failure (info["collision"]); reaching the goal disc terminates it with reward 1 and
info["success"]. Reward is sparse (1 on success, else 0) or, with reward: dense, minus the
distance to the goal per step plus 1 on success.

Observation float32 [4]: position (2) and goal - position (2). 10 Hz, 40 steps per episode.
"""

from __future__ import annotations

import math
from typing import ClassVar

import gymnasium as gym
import numpy as np

from dppo_robot.envs.registry import register_task
from dppo_robot.envs.task_config import TaskConfig
from dppo_robot.io_spec import IOSpec, Slice

START = (0.0, -1.0)
START_JITTER = 0.1
GOAL = (0.0, 1.0)
GOAL_RADIUS = 0.15
WALL_HALF_THICKNESS = 0.15
GAP_INNER_X = 0.5
GAP_OUTER_X = 0.95
ARENA = 1.5
MAX_STEP = 0.1
CONTROL_HZ = 10.0


def in_obstacle(x: float, y: float) -> bool:
    """True when (x, y) lies inside the central block or the outer walls."""
    if abs(y) > WALL_HALF_THICKNESS:
        return False
    ax = abs(x)
    return ax <= GAP_INNER_X or ax >= GAP_OUTER_X


class Reach2DEnv(gym.Env):
    """See the module docstring."""

    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(self, cfg: TaskConfig, seed: int | None = None) -> None:
        if cfg.cameras:
            raise ValueError("reach2d has no camera variant; set cameras: []")
        if abs(cfg.control_hz - CONTROL_HZ) > 1e-9:
            raise ValueError(f"reach2d runs at {CONTROL_HZ:g} Hz; control_hz is {cfg.control_hz:g}")
        self.cfg = cfg
        self._dense = cfg.reward == "dense"
        self._noise = float(cfg.obs_noise_std)
        self._rng = np.random.default_rng(seed)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.x, self.y = START

    def _obs(self) -> np.ndarray:
        o = np.array([self.x, self.y, GOAL[0] - self.x, GOAL[1] - self.y], np.float32)
        if self._noise > 0:
            o += self._rng.normal(0.0, self._noise, 4).astype(np.float32)
        return o

    @property
    def position(self) -> tuple[float, float]:
        return self.x, self.y

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        jx, jy = self._rng.uniform(-START_JITTER, START_JITTER, 2)
        self.x, self.y = START[0] + float(jx), START[1] + float(jy)
        return self._obs(), {"success": False, "collision": False}

    def step(self, action):
        a = np.asarray(action, np.float64).reshape(-1)
        if a.shape != (2,):
            raise ValueError(f"reach2d: action must have 2 values, got shape {np.shape(action)}")
        ax = min(1.0, max(-1.0, float(a[0]))) * MAX_STEP
        ay = min(1.0, max(-1.0, float(a[1]))) * MAX_STEP
        x0, y0 = self.x, self.y
        x1 = min(ARENA, max(-ARENA, x0 + ax))
        y1 = min(ARENA, max(-ARENA, y0 + ay))
        self.x, self.y = x1, y1
        collision = in_obstacle(x1, y1) or in_obstacle(0.5 * (x0 + x1), 0.5 * (y0 + y1))
        dist = math.hypot(x1 - GOAL[0], y1 - GOAL[1])
        success = (not collision) and dist <= GOAL_RADIUS
        reward = 1.0 if success else 0.0
        if self._dense:
            reward -= dist
        info = {"success": success, "collision": collision}
        return self._obs(), reward, bool(success or collision), False, info

    def render(self):
        return None


def build_reach2d(cfg: TaskConfig, seed: int | None) -> gym.Env:
    return Reach2DEnv(cfg, seed)


def reach2d_io_spec(cfg: TaskConfig) -> IOSpec:
    obs = [Slice("pos", 2, "m", "world"), Slice("goal_rel", 2, "m", "world", "goal minus position")]
    act = [Slice("vel", 2, "normalized", "world", f"+-1 = +-{MAX_STEP} m per step")]
    return IOSpec(obs, act, float(cfg.control_hz))


register_task(
    "reach2d",
    build_reach2d,
    reach2d_io_spec,
    defaults={"max_episode_steps": 40, "cond_steps": 1, "act_steps": 4, "control_hz": CONTROL_HZ, "reward": "sparse"},
    description="2D point reaching around a wall through one of two gaps (Do 4, Da 2); multimodal demos",
)

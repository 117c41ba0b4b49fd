"""Test-only tasks that fail on purpose (imported by name so worker processes can unpickle them).

Each is reach2d whose episode with seed TRIGGER_SEED misbehaves at env step FAIL_AT_STEP:
raises, hangs, or kills its process.
"""

from __future__ import annotations

import os
import time

from dppo_robot.envs.registry import register_task
from dppo_robot.envs.toy_multimodal import Reach2DEnv, reach2d_io_spec

TRIGGER_SEED = 1234
FAIL_AT_STEP = 3
DEFAULTS = {"max_episode_steps": 40, "cond_steps": 1, "act_steps": 2, "control_hz": 10.0}


class FaultyReach2D(Reach2DEnv):
    mode = "raise"

    def reset(self, *, seed=None, options=None):
        self.episode_seed = seed
        self.n = 0
        return super().reset(seed=seed, options=options)

    def step(self, action):
        self.n += 1
        if self.episode_seed == TRIGGER_SEED and self.n == FAIL_AT_STEP:
            if self.mode == "raise":
                raise RuntimeError("boom: deliberate test failure")
            if self.mode == "hang":
                time.sleep(3600)
            if self.mode == "die":
                os._exit(7)
        return super().step(action)


class HangingReach2D(FaultyReach2D):
    mode = "hang"


class DyingReach2D(FaultyReach2D):
    mode = "die"


def build_crash(cfg, seed):
    return FaultyReach2D(cfg, seed)


def build_hang(cfg, seed):
    return HangingReach2D(cfg, seed)


def build_die(cfg, seed):
    return DyingReach2D(cfg, seed)


register_task("test_crash", build_crash, reach2d_io_spec, defaults=DEFAULTS)
register_task("test_hang", build_hang, reach2d_io_spec, defaults=DEFAULTS)
register_task("test_die", build_die, reach2d_io_spec, defaults=DEFAULTS)

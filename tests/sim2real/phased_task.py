"""Test-only tasks and detectors with phases (imported by name so worker processes can unpickle them).

`phased_reach`: reach2d whose episode reports info["phase"] / info["phase_name"]: the highest
of 1 moved (> MOVED_M from the start), 2 far (> FAR_M), 3 done (> DONE_M; success, terminates).
`LIFT_DETECTOR`: phases of a hardware trial from part poses: the highest k whose height
LIFT_LEVELS_M[k - 1] part 0 has exceeded.
"""

from __future__ import annotations

import math

import numpy as np

from dppo_robot.envs.registry import register_task
from dppo_robot.envs.toy_multimodal import Reach2DEnv, reach2d_io_spec
from dppo_robot.sim2real.phases import PhaseDetector, register_phase_names

PHASES = ("start", "moved", "far", "done")
MOVED_M, FAR_M, DONE_M = 0.05, 0.4, 0.8
DEFAULTS = {"max_episode_steps": 40, "cond_steps": 1, "act_steps": 4, "control_hz": 10.0, "reward": "sparse"}


class PhasedReach(Reach2DEnv):
    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=seed, options=options)
        self.start = (self.x, self.y)
        self.phase = 0
        return obs, {**info, "phase": 0, "phase_name": PHASES[0]}

    def step(self, action):
        obs, _, _, trunc, info = super().step(action)
        d = math.hypot(self.x - self.start[0], self.y - self.start[1])
        for k, lim in enumerate((MOVED_M, FAR_M, DONE_M), start=1):
            if self.phase == k - 1 and d > lim:
                self.phase = k
        success = self.phase == 3
        info = {**info, "success": success, "phase": self.phase, "phase_name": PHASES[self.phase]}
        return obs, float(success), success, trunc, info


def build_phased(cfg, seed):
    return PhasedReach(cfg, seed)


register_task("phased_reach", build_phased, reach2d_io_spec, defaults=DEFAULTS)
register_phase_names("phased_reach", PHASES)

LIFT_NAMES = ("start", "touched", "lifted", "placed")
LIFT_LEVELS_M = (0.01, 0.05, 0.10)


def _detect_lift(samples) -> int:
    if not samples:
        return 0
    top = max(float(np.max(p[:1, 2])) if len(p) else 0.0 for _, p in samples)
    return sum(1 for h in LIFT_LEVELS_M if top > h)


LIFT_DETECTOR = PhaseDetector(LIFT_NAMES, _detect_lift)

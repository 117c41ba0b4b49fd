"""Action vectors <-> end-effector targets, per the `ActionMapping` config.

The bridge turns a chunk point into a target pose (delta actions anchored at the measured
pose at the start of the point's interval); the simulated Franka turns the target it is sent
back into the task's action, so a delta policy run through the stack sees exactly the actions
it chose whenever the safety layer does not intervene.

Shapes: action [Da]; position [3] m; quat [4] xyzw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dppo_robot.deploy.config import ActionMapping
from dppo_robot.deploy.pose_math import apply_world_rotvec, normalize_quat, world_rotvec


@dataclass
class PoseTarget:
    position: np.ndarray  # [3]
    quat: np.ndarray  # [4] xyzw
    gripper: float | None = None  # -1 open .. +1 close


class ActionMapper:
    """Index the configured action slices of a bundle's action spec (name, size) list."""

    def __init__(self, cfg: ActionMapping, action_slices: list[tuple[str, int]]) -> None:
        self.cfg = cfg
        offsets, start = {}, 0
        for name, size in action_slices:
            offsets[name] = (start, start + size)
            start += size
        self.action_dim = start

        def get(name: str, sizes: tuple[int, ...]) -> tuple[int, int] | None:
            if not name:
                return None
            if name not in offsets:
                raise ValueError(f"action mapping names slice '{name}'; the bundle's action slices are {list(offsets)}")
            a, b = offsets[name]
            if b - a not in sizes:
                raise ValueError(f"action slice '{name}' has {b - a} values; expected one of {sizes}")
            return a, b

        self.pos = get(cfg.position_slice, (2, 3))
        self.rot = get(cfg.rotation_slice, (3,)) if cfg.mode == "delta_pose" else None
        self.quat = get(cfg.quat_slice, (4,)) if cfg.mode == "absolute_pose" else None
        self.grip = get(cfg.gripper_slice, (1,))

    def _clip(self, v: np.ndarray) -> np.ndarray:
        return np.clip(v, -1.0, 1.0) if self.cfg.clip_normalized else v

    def to_target(self, action: np.ndarray, anchor_pos: np.ndarray, anchor_quat: np.ndarray) -> PoseTarget:
        """The pose the point asks for, given the measured pose at the start of its interval."""
        a = np.asarray(action, np.float64)
        pos = np.array(anchor_pos, np.float64)
        quat = normalize_quat(anchor_quat)
        p0, p1 = self.pos
        n = p1 - p0
        if self.cfg.mode == "delta_pose":
            pos[:n] = pos[:n] + self.cfg.position_scale_m * self._clip(a[p0:p1])
            if self.rot is not None:
                quat = apply_world_rotvec(quat, self.cfg.rotation_scale_rad * self._clip(a[self.rot[0] : self.rot[1]]))
        else:
            pos[:n] = a[p0:p1]
            if self.quat is not None:
                quat = normalize_quat(a[self.quat[0] : self.quat[1]])
        grip = float(np.clip(a[self.grip[0]], -1, 1)) if self.grip is not None else None
        return PoseTarget(pos, quat, grip)

    def to_action(
        self, target: PoseTarget, measured_pos: np.ndarray, measured_quat: np.ndarray, base: np.ndarray | None = None
    ) -> np.ndarray:
        """The task action that moves from the measured pose to `target` (the simulated Franka's side)."""
        a = np.zeros(self.action_dim) if base is None else np.array(base, np.float64)
        p0, p1 = self.pos
        n = p1 - p0
        if self.cfg.mode == "delta_pose":
            a[p0:p1] = (target.position[:n] - np.asarray(measured_pos)[:n]) / self.cfg.position_scale_m
            if self.rot is not None:
                a[self.rot[0] : self.rot[1]] = world_rotvec(measured_quat, target.quat) / self.cfg.rotation_scale_rad
            a = self._clip(a)
        else:
            a[p0:p1] = target.position[:n]
            if self.quat is not None:
                a[self.quat[0] : self.quat[1]] = target.quat
        if self.grip is not None and target.gripper is not None:
            a[self.grip[0]] = target.gripper
        return a.astype(np.float32)

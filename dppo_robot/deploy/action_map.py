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


def gripper_to_finger(g: np.ndarray, open_m: float) -> np.ndarray:
    """Gripper action (-1 open .. +1 close) -> finger joint position (m, = width / 2)."""
    return (1.0 - np.clip(np.asarray(g, np.float64), -1.0, 1.0)) * 0.5 * open_m


def finger_to_gripper(finger_m: np.ndarray, open_m: float) -> np.ndarray:
    """Finger joint position (m) -> gripper action (-1 open .. +1 close)."""
    return np.clip(1.0 - 2.0 * np.asarray(finger_m, np.float64) / open_m, -1.0, 1.0)


@dataclass
class PoseChunk:
    """A chunk as absolute end-effector targets (what goes on the wire), env units.

    Shapes: positions [N, 3] m; quats [N, 4] xyzw; gripper [N] (-1 open .. +1 close) or None.
    """

    positions: np.ndarray
    quats: np.ndarray
    gripper: np.ndarray | None = None


def chunk_targets(
    mapper: ActionMapper, actions: np.ndarray, anchor_pos: np.ndarray, anchor_quat: np.ndarray
) -> PoseChunk:
    """The policy's actions [N, Da] (env units) as absolute targets, anchored at the measured pose
    at the observation time. delta_pose: target_i = target_(i-1) + step_i (target_(-1) = the anchor),
    each step as the env applies it (scaled, clipped to [-1, 1]; rotation in the world frame);
    absolute_pose: the actions themselves (dimensions they leave out keep the anchor's value)."""
    a = np.asarray(actions, np.float64)
    pos, quat = np.array(anchor_pos, np.float64), normalize_quat(anchor_quat)
    positions, quats = np.zeros((len(a), 3)), np.zeros((len(a), 4))
    for i, row in enumerate(a):
        t = mapper.to_target(row, pos, quat)
        pos, quat = t.position, t.quat
        positions[i], quats[i] = pos, quat
    grip = np.clip(a[:, mapper.grip[0]], -1.0, 1.0) if mapper.grip is not None else None
    return PoseChunk(positions, quats, grip)


POSE_ROW = 15  # the bridge's per-point row: target pos 3, quat 4, gripper 1, previous target pos 3, quat 4


def pose_rows(chunk: PoseChunk) -> np.ndarray:
    """[N, 15] rows for the bridge core: target, gripper (NaN: none), previous target (NaN for point 0)."""
    n = len(chunk.positions)
    rows = np.full((n, POSE_ROW), np.nan)
    rows[:, 0:3], rows[:, 3:7] = chunk.positions, chunk.quats
    if chunk.gripper is not None:
        rows[:, 7] = chunk.gripper
    rows[1:, 8:11], rows[1:, 11:15] = chunk.positions[:-1], chunk.quats[:-1]
    return rows


class PoseChunkMapper:
    """The bridge's point -> target rule for absolute chunks (pose_rows), see BridgeConfig.execute.

    steps: the point's step (target_i - target_(i-1), rotation as a world-frame rotation vector)
    from the measured pose at its start; point 0 goes to its absolute target (the policy anchored
    the chunk at the measured pose at the observation time, which is the start of point 0).
    absolute: the target itself.
    """

    def __init__(self, execute: str) -> None:
        if execute not in ("steps", "absolute"):
            raise ValueError(f"bridge.execute must be steps or absolute, got {execute!r}")
        self.execute = execute

    def to_target(self, row: np.ndarray, anchor_pos: np.ndarray, anchor_quat: np.ndarray) -> PoseTarget:
        row = np.asarray(row, np.float64)
        grip = None if np.isnan(row[7]) else float(row[7])
        pos, quat = row[0:3].copy(), normalize_quat(row[3:7])
        if self.execute == "steps" and not np.isnan(row[8]):
            pos = np.asarray(anchor_pos, np.float64) + (pos - row[8:11])
            quat = apply_world_rotvec(normalize_quat(anchor_quat), world_rotvec(normalize_quat(row[11:15]), quat))
        return PoseTarget(pos, quat, grip)

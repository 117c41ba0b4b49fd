"""The 10-D absolute end-effector action of DPPO's furniture tasks, mapped onto robosuite's OSC.

Action (env units): ee position target (3, m, base frame), ee orientation target as a 6D
rotation (6, base frame), gripper (1: -1 open, +1 close) — FurnitureSim's act_rot_repr="rot_6d"
with absolute targets, at 10 Hz.

6D rotation convention (pytorch3d, used by the reference): the first two ROWS of the rotation
matrix, [R00 R01 R02 R10 R11 R12]; decoding is Gram-Schmidt on those rows.

End-effector frame: FurnitureBench's Franka hand frame (k_ee_link): z = approach, y = the
fingers' closing axis. robosuite's Panda grip site has z = approach and x = closing axis, so
R_ee = R_site @ SITE_TO_EE. Position = robosuite's grip site (between the finger pads).

Tracking: robosuite 1.5.1's OSC_POSE (the default Panda gains: kp 150, critically damped,
nullspace to the reset joints) with input_type "absolute" in the base frame; its absolute
orientation input is axis-angle, so the 6D target becomes a matrix, then the grip-site matrix,
then a rotation vector. Targets are clipped to FurnitureBench's ee position limits.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.spatial.transform import Rotation

from dppo_robot.envs.one_leg.geometry import EE_POS_LIMITS

# Columns: the FurnitureBench ee axes expressed in the robosuite grip-site frame.
SITE_TO_EE = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])

OSC_KP = 150.0


def matrix_to_rot6d(R: np.ndarray) -> np.ndarray:
    """[..., 3, 3] -> [..., 6]: the first two rows (pytorch3d matrix_to_rotation_6d)."""
    R = np.asarray(R)
    return R[..., :2, :].reshape(*R.shape[:-2], 6)


def rot6d_to_matrix(d6: np.ndarray) -> np.ndarray:
    """[..., 6] -> [..., 3, 3] by Gram-Schmidt on the two rows (pytorch3d rotation_6d_to_matrix)."""
    d6 = np.asarray(d6, np.float64)
    a1, a2 = d6[..., :3], d6[..., 3:6]
    b1 = a1 / np.maximum(np.linalg.norm(a1, axis=-1, keepdims=True), 1e-9)
    b2 = a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1
    b2 = b2 / np.maximum(np.linalg.norm(b2, axis=-1, keepdims=True), 1e-9)
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-2)


def site_to_ee(R_site: np.ndarray) -> np.ndarray:
    return np.asarray(R_site) @ SITE_TO_EE


def ee_to_site(R_ee: np.ndarray) -> np.ndarray:
    return np.asarray(R_ee) @ SITE_TO_EE.T


def osc_input(action: np.ndarray) -> np.ndarray:
    """10-D env action -> robosuite OSC_POSE absolute input [pos (3), rotvec (3), gripper (1)]."""
    a = np.asarray(action, np.float64).reshape(-1)
    if a.shape != (10,):
        raise ValueError(f"one_leg: action must have 10 values (pos 3, rot6d 6, gripper 1), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"one_leg: action has non-finite values: {a}")
    pos = np.clip(a[:3], EE_POS_LIMITS[:, 0], EE_POS_LIMITS[:, 1])
    R_site = ee_to_site(rot6d_to_matrix(a[3:9]))
    rotvec = Rotation.from_matrix(R_site).as_rotvec()
    grip = float(np.clip(a[9], -1.0, 1.0))
    return np.concatenate([pos, rotvec, [grip]])


def controller_config() -> dict:
    """robosuite's default Panda composite controller with the arm's OSC_POSE switched to absolute input."""
    from robosuite.controllers import load_composite_controller_config
    from robosuite.utils.log_utils import ROBOSUITE_DEFAULT_LOGGER as LOG

    level = LOG.level
    LOG.setLevel(max(level, logging.WARNING))
    try:
        cfg = load_composite_controller_config(robot="Panda")
    finally:
        LOG.setLevel(level)
    arm = cfg["body_parts"]["right"]
    if arm["type"] != "OSC_POSE":
        raise RuntimeError(f"robosuite's default Panda controller is not OSC_POSE: {arm}")
    arm.update(input_type="absolute", input_ref_frame="base", kp=OSC_KP, damping_ratio=1.0)
    return cfg

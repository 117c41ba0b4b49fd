"""Small pose helpers (numpy + scipy): quaternions are xyzw, positions metres.

Shapes: position [3], quat_xyzw [4]; batches are not needed here.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

IDENTITY_QUAT = np.array([0.0, 0.0, 0.0, 1.0])


def normalize_quat(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, np.float64)
    n = float(np.linalg.norm(q))
    if not np.isfinite(n) or n < 1e-9:
        return IDENTITY_QUAT.copy()
    return q / n


def nlerp(q0: np.ndarray, q1: np.ndarray, w: float) -> np.ndarray:
    """Normalised linear interpolation on the shorter arc (w in [0, 1])."""
    q0, q1 = normalize_quat(q0), normalize_quat(q1)
    if float(np.dot(q0, q1)) < 0:
        q1 = -q1
    return normalize_quat((1 - w) * q0 + w * q1)


def angle_between(q0: np.ndarray, q1: np.ndarray) -> float:
    """Rotation angle (rad) from q0 to q1."""
    d = abs(float(np.dot(normalize_quat(q0), normalize_quat(q1))))
    return 2.0 * float(np.arccos(min(1.0, d)))


def slerp_limit(q_from: np.ndarray, q_to: np.ndarray, max_rad: float) -> tuple[np.ndarray, bool]:
    """q_to, or the rotation max_rad of the way from q_from towards it; (quat, limited)."""
    ang = angle_between(q_from, q_to)
    if ang <= max_rad:
        return normalize_quat(q_to), False
    r0, r1 = Rotation.from_quat(normalize_quat(q_from)), Rotation.from_quat(normalize_quat(q_to))
    step = Rotation.from_rotvec((r1 * r0.inv()).as_rotvec() * (max_rad / ang))
    return (step * r0).as_quat(), True


def apply_world_rotvec(q: np.ndarray, rotvec: np.ndarray) -> np.ndarray:
    """Rotate orientation q by an axis-angle expressed in the world (base) frame."""
    return (Rotation.from_rotvec(np.asarray(rotvec, np.float64)) * Rotation.from_quat(normalize_quat(q))).as_quat()


def world_rotvec(q_from: np.ndarray, q_to: np.ndarray) -> np.ndarray:
    """The world-frame axis-angle r with q_to = exp(r) * q_from."""
    r0, r1 = Rotation.from_quat(normalize_quat(q_from)), Rotation.from_quat(normalize_quat(q_to))
    return (r1 * r0.inv()).as_rotvec()

"""Rigid transforms for calibration: 4x4 homogeneous poses, rotation averaging, pose errors.

Conventions: T_a_b [4, 4] maps points in frame b to frame a (p_a = T_a_b @ p_b); rotations
R [3, 3]; quaternions xyzw with w >= 0; rotation vectors (OpenCV rvec) [3]; metres, radians
unless a name says mm / deg.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def make_pose(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """[4, 4] from R [3, 3] and t [3]."""
    T = np.eye(4)
    T[:3, :3] = np.asarray(R, np.float64)
    T[:3, 3] = np.asarray(t, np.float64).reshape(3)
    return T


def invert(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid transform [4, 4]."""
    R, t = T[:3, :3], T[:3, 3]
    return make_pose(R.T, -R.T @ t)


def from_rvec_tvec(rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    """OpenCV (rvec, tvec) -> [4, 4]."""
    return make_pose(Rotation.from_rotvec(np.asarray(rvec, np.float64).reshape(3)).as_matrix(), tvec)


def to_rvec_tvec(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[4, 4] -> (rvec [3, 1], tvec [3, 1]) for OpenCV."""
    return Rotation.from_matrix(T[:3, :3]).as_rotvec().reshape(3, 1), T[:3, 3].reshape(3, 1).copy()


def from_pos_quat(pos: np.ndarray, quat_xyzw: np.ndarray) -> np.ndarray:
    return make_pose(Rotation.from_quat(np.asarray(quat_xyzw, np.float64)).as_matrix(), pos)


def to_pos_quat(T: np.ndarray) -> np.ndarray:
    """[4, 4] -> [7] position + quaternion xyzw (w >= 0)."""
    q = Rotation.from_matrix(T[:3, :3]).as_quat()
    if q[3] < 0:
        q = -q
    return np.concatenate([T[:3, 3], q])


def rotation_angle(R: np.ndarray) -> float:
    """Angle (rad) of a rotation matrix, robust near 0 and pi."""
    return float(np.linalg.norm(Rotation.from_matrix(project_to_so3(R)).as_rotvec()))


def pose_error(T_est: np.ndarray, T_true: np.ndarray) -> tuple[float, float]:
    """(translation error mm, rotation error deg) between two poses of the same frame."""
    dt = float(np.linalg.norm(T_est[:3, 3] - T_true[:3, 3])) * 1e3
    dr = np.degrees(rotation_angle(T_est[:3, :3].T @ T_true[:3, :3]))
    return dt, float(dr)


def orthonormality_error(R: np.ndarray) -> float:
    """max |R^T R - I| (0 for a rotation); det must be checked separately."""
    R = np.asarray(R, np.float64)
    return float(np.max(np.abs(R.T @ R - np.eye(3))))


def is_rotation(R: np.ndarray, tol: float = 1e-6) -> bool:
    R = np.asarray(R, np.float64)
    return R.shape == (3, 3) and orthonormality_error(R) <= tol and np.linalg.det(R) > 0


def project_to_so3(M: np.ndarray) -> np.ndarray:
    """Nearest rotation (Frobenius) to a 3x3 matrix."""
    U, _, Vt = np.linalg.svd(np.asarray(M, np.float64))
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ D @ Vt


def average_rotations(Rs: np.ndarray, weights: np.ndarray | None = None, iters: int = 10) -> np.ndarray:
    """Weighted geodesic (Karcher) mean of rotations [N, 3, 3], started from the chordal mean."""
    Rs = np.asarray(Rs, np.float64).reshape(-1, 3, 3)
    w = np.ones(len(Rs)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    mean = project_to_so3(np.einsum("n,nij->ij", w, Rs))
    for _ in range(iters):
        deltas = Rotation.from_matrix(np.einsum("ji,njk->nik", mean, Rs)).as_rotvec()  # log(mean^T R_n)
        step = np.einsum("n,ni->i", w, deltas)
        mean = mean @ Rotation.from_rotvec(step).as_matrix()
        if np.linalg.norm(step) < 1e-12:
            break
    return mean


def average_poses(Ts: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted mean of poses [N, 4, 4]: Karcher mean of rotations, weighted mean of translations."""
    Ts = np.asarray(Ts, np.float64).reshape(-1, 4, 4)
    w = np.ones(len(Ts)) if weights is None else np.asarray(weights, np.float64)
    t = np.einsum("n,ni->i", w / w.sum(), Ts[:, :3, 3])
    return make_pose(average_rotations(Ts[:, :3, :3], w), t)


def random_rotation(rng: np.random.Generator, max_angle_rad: float) -> np.ndarray:
    """A rotation about a uniformly random axis by an angle uniform in [0, max_angle_rad]."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    return Rotation.from_rotvec(axis * rng.uniform(0.0, max_angle_rad)).as_matrix()


def look_at(eye: np.ndarray, target: np.ndarray, up: tuple[float, float, float] = (0.0, 0.0, 1.0)) -> np.ndarray:
    """T_world_cam of an OpenCV camera (z forward, y down) at eye looking at target; image up ~ `up`."""
    z = np.asarray(target, np.float64) - np.asarray(eye, np.float64)
    z /= np.linalg.norm(z)
    x = np.cross(z, np.asarray(up, np.float64))
    if np.linalg.norm(x) < 1e-9:
        x = np.cross(z, [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return make_pose(np.stack([x, y, z], axis=1), eye)

"""Pose maths: inverses, conversions, rotation and pose averaging against hand values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dppo_robot.calibration import se3


def test_invert_and_conversions_round_trip():
    rng = np.random.default_rng(0)
    T = se3.make_pose(se3.random_rotation(rng, np.pi), [0.1, -0.2, 0.3])
    assert np.allclose(T @ se3.invert(T), np.eye(4))
    assert np.allclose(se3.from_rvec_tvec(*se3.to_rvec_tvec(T)), T)
    p = se3.to_pos_quat(T)
    assert p[6] >= 0 and np.allclose(se3.from_pos_quat(p[:3], p[3:]), T)


def test_pose_error_in_mm_and_deg():
    T = np.eye(4)
    U = se3.make_pose(Rotation.from_euler("z", 2.0, degrees=True).as_matrix(), [0.003, 0.004, 0.0])
    mm, deg = se3.pose_error(U, T)
    assert mm == pytest.approx(5.0) and deg == pytest.approx(2.0)


def test_average_rotations_is_the_geodesic_mean():
    # +-10 deg about z average to identity; weights 3:1 give 5 deg (the weighted geodesic mean)
    a, b = (Rotation.from_euler("z", s * 10, degrees=True).as_matrix() for s in (1, -1))
    assert np.allclose(se3.average_rotations(np.stack([a, b])), np.eye(3), atol=1e-12)
    m = se3.average_rotations(np.stack([a, b]), np.array([3.0, 1.0]))
    assert np.degrees(Rotation.from_matrix(m).magnitude()) == pytest.approx(5.0, abs=1e-9)


def test_average_poses_of_noisy_copies_recovers_the_pose():
    rng = np.random.default_rng(1)
    T = se3.make_pose(se3.random_rotation(rng, 2.0), [0.5, 0.1, 0.2])
    noisy = [
        se3.make_pose(T[:3, :3] @ se3.random_rotation(rng, np.radians(1)), T[:3, 3] + rng.normal(0, 1e-3, 3))
        for _ in range(400)
    ]
    mm, deg = se3.pose_error(se3.average_poses(np.stack(noisy)), T)
    assert mm < 0.2 and deg < 0.1


def test_rotation_checks():
    assert se3.is_rotation(np.eye(3))
    assert not se3.is_rotation(np.diag([1.0, 1.0, -1.0]))  # a reflection
    assert se3.orthonormality_error(np.diag([1.0, 1.001, 1.0])) == pytest.approx(0.002001, rel=1e-3)
    assert se3.is_rotation(se3.project_to_so3(np.eye(3) + 0.01))


def test_look_at_points_z_at_the_target():
    T = se3.look_at(np.array([1.0, 0.0, 1.0]), np.zeros(3))
    assert se3.is_rotation(T[:3, :3])
    assert np.allclose(T[:3, 2], -np.array([1.0, 0.0, 1.0]) / np.sqrt(2))

"""Hand-eye calibration against a known transform: board images rendered at 15 robot poses."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dppo_robot.calibration import hand_eye, se3
from dppo_robot.calibration.charuco import BoardSpec
from dppo_robot.calibration.errors import CalibrationError
from tests.calibration.synth import K_VGA, board_centre, board_pose_from_image

SPEC = BoardSpec()
ROBOT_NOISE = (0.1e-3, np.radians(0.02))  # Franka pose repeatability-level noise on the robot poses


def _noisy(T: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    m, r = ROBOT_NOISE
    return se3.make_pose(T[:3, :3] @ se3.random_rotation(rng, r), T[:3, 3] + rng.normal(0.0, m, 3))


def wrist_camera(rng: np.random.Generator) -> np.ndarray:
    """A T_hand_cam: the camera a few cm off the flange, looking roughly along the hand's z."""
    return se3.make_pose(se3.random_rotation(rng, 0.3) @ np.diag([1.0, -1.0, -1.0]), [0.05, -0.03, 0.06])


def eye_in_hand_session(n: int, rng: np.random.Generator, X: np.ndarray | None = None):
    """Board on the table, wrist camera looking at it from n poses. -> (X true, T_base_hand, T_cam_board, views)."""
    X = wrist_camera(rng) if X is None else X  # T_hand_cam
    centre = np.array([0.5, 0.1, 0.0])
    Y = se3.make_pose(np.diag([1.0, -1.0, -1.0]), centre) @ se3.invert(board_centre(SPEC))  # T_base_board
    A, B, obj, img = [], [], [], []
    for _ in range(n):
        eye = centre + np.array([rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2), rng.uniform(0.4, 0.55)])
        T_cam = se3.look_at(eye, centre + rng.uniform(-0.04, 0.04, 3), up=(1.0, 0.0, 0.0))
        roll = Rotation.from_euler("z", rng.uniform(-45, 45), degrees=True).as_matrix()  # about the optical axis
        T_cam = T_cam @ se3.make_pose(roll @ se3.random_rotation(rng, np.radians(10)), np.zeros(3))
        T_board, o = board_pose_from_image(SPEC, se3.invert(T_cam) @ Y, rng)
        A.append(_noisy(T_cam @ se3.invert(X), rng))
        B.append(T_board)
        obj.append(o.object_points)
        img.append(o.image_points)
    return X, np.stack(A), np.stack(B), hand_eye.PixelViews(obj, img, K_VGA, np.zeros(5))


def eye_to_hand_session(n: int, rng: np.random.Generator):
    """Fixed camera, board clamped to the hand and shown at n poses. -> (X true = T_base_cam, ...)."""
    X = se3.look_at(np.array([1.1, 0.4, 0.5]), np.array([0.5, 0.0, 0.25]))
    Y = se3.make_pose(se3.random_rotation(rng, 0.2), [0.0, 0.0, 0.08]) @ se3.invert(board_centre(SPEC))  # T_hand_board
    A, B, obj, img = [], [], [], []
    for _ in range(n):
        c = np.array([0.5, 0.0, 0.25]) + rng.uniform(-0.12, 0.12, 3)
        R = se3.look_at(X[:3, 3], c)[:3, :3] @ se3.random_rotation(rng, np.radians(30))  # board faces the camera
        T_base_board = se3.make_pose(R, c) @ se3.invert(board_centre(SPEC))
        T_board, o = board_pose_from_image(SPEC, se3.invert(X) @ T_base_board, rng)
        A.append(_noisy(T_base_board @ se3.invert(Y), rng))
        B.append(T_board)
        obj.append(o.object_points)
        img.append(o.image_points)
    return X, np.stack(A), np.stack(B), hand_eye.PixelViews(obj, img, K_VGA, np.zeros(5))


@pytest.mark.parametrize("mount", ["eye_in_hand", "eye_to_hand"])
def test_hand_eye_recovers_the_transform_from_15_noisy_poses(mount):
    rng = np.random.default_rng(11)
    session = eye_in_hand_session if mount == "eye_in_hand" else eye_to_hand_session
    X, A, B, views = session(15, rng)
    res = hand_eye.calibrate(A, B, mount, views=views)
    mm, deg = se3.pose_error(res.X, X)
    pose_only = hand_eye.calibrate(A, B, mount)
    mm0, deg0 = se3.pose_error(pose_only.X, X)
    print(f"\nhand-eye {mount}, 15 rendered poses: {mm:.3f} mm {deg:.3f} deg "
          f"(pose residuals only: {mm0:.3f} mm {deg0:.3f} deg)")  # fmt: skip
    assert mm < 1.0 and deg < 0.2
    assert len(res.outlier_index) == 0 and res.residual_mm.max() < 3.0


def test_ransac_rejects_bad_poses_and_holdout_reports_the_error():
    rng = np.random.default_rng(5)
    X, A, B, _ = eye_in_hand_session(18, rng)
    B = B.copy()
    B[2] = se3.make_pose(B[2][:3, :3], B[2][:3, 3] + [0.02, 0.0, 0.0])  # the board slipped 2 cm
    flip = Rotation.from_euler("x", 5.0, degrees=True).as_matrix()
    B[9] = se3.make_pose(B[9][:3, :3] @ flip, B[9][:3, 3])  # a bad detection: 5 deg off
    res = hand_eye.calibrate(A, B, "eye_in_hand", holdout=4)
    assert sorted(res.outlier_index.tolist()) == [2, 9]
    assert len(res.holdout_index) == 4 and not set(res.holdout_index) & {2, 9}
    mm, deg = se3.pose_error(res.X, X)
    assert mm < 1.5 and deg < 0.2
    assert np.median(res.holdout_mm) < 1.5 and np.median(res.holdout_deg) < 0.2
    # verify() on poses of another session gives the same kind of error
    _, A2, B2, _ = eye_in_hand_session(1, np.random.default_rng(6))
    assert hand_eye.verify(res, A2, B2)[0].shape == (1,)


def test_noise_free_closed_form_is_exact_for_both_formulations():
    rng = np.random.default_rng(2)
    X = se3.make_pose(se3.random_rotation(rng, np.pi), [0.03, 0.02, 0.1])
    Y = se3.make_pose(se3.random_rotation(rng, np.pi), [0.5, 0.1, 0.0])
    A = np.stack([se3.make_pose(se3.random_rotation(rng, 1.0), rng.uniform(-0.3, 0.3, 3)) for _ in range(6)])
    B = np.stack([se3.invert(a @ X) @ Y for a in A])  # A X B = Y
    assert se3.pose_error(hand_eye.solve_closed_form(A, B), X)[0] < 1e-6
    # eye_to_hand gets robot poses T_base_hand and inverts them itself
    res = hand_eye.calibrate(np.stack([se3.invert(a) for a in A]), B, "eye_to_hand")
    assert se3.pose_error(res.X, X)[0] < 1e-6


def test_poor_motion_is_warned_about_and_too_few_poses_refused():
    rng = np.random.default_rng(4)
    axis_z = [
        se3.make_pose(Rotation.from_euler("z", a, degrees=True).as_matrix(), rng.uniform(-0.1, 0.1, 3))
        for a in (0, 5, 10)
    ]
    w = hand_eye.motion_warnings(np.stack(axis_z))
    assert any("at most 10 deg" in s for s in w) and any("one axis" in s for s in w)
    with pytest.raises(CalibrationError, match="at least 3 poses"):
        hand_eye.calibrate(np.stack(axis_z[:2]), np.stack(axis_z[:2]), "eye_in_hand")

"""ChArUco board pose from rendered 640x480 images (blur + noise) against the known pose."""

from __future__ import annotations

import numpy as np

from dppo_robot.calibration import se3
from dppo_robot.calibration.charuco import BoardSpec, board_pose
from tests.calibration.synth import K_VGA, board_centre, observe_board


def random_board_pose(spec: BoardSpec, rng: np.random.Generator, tilt_deg: float = 40.0) -> np.ndarray:
    """T_cam_board: the board's centre 0.4-0.65 m in front of the camera, tilted up to tilt_deg."""
    R = se3.random_rotation(rng, np.radians(tilt_deg))
    t = np.array([rng.uniform(-0.05, 0.05), rng.uniform(-0.04, 0.04), rng.uniform(0.4, 0.65)])
    return se3.make_pose(R, t) @ se3.invert(board_centre(spec))


def test_board_pose_within_2mm_and_half_a_degree_at_640x480():
    spec = BoardSpec()
    rng = np.random.default_rng(7)
    errs = []
    for _ in range(12):
        T = random_board_pose(spec, rng)
        _, obs = observe_board(spec, T, rng)
        assert obs is not None and len(obs.ids) >= 20
        T_est, rms = board_pose(obs, K_VGA, np.zeros(5))
        assert rms < 0.3
        C = board_centre(spec)
        errs.append(se3.pose_error(T_est @ C, T @ C))  # error of the board's centre
    errs = np.array(errs)
    print(f"\nboard pose, 640x480, blur 0.8 px, noise 3: max {errs[:, 0].max():.3f} mm, {errs[:, 1].max():.3f} deg")
    assert errs[:, 0].max() < 2.0 and errs[:, 1].max() < 0.5


def test_no_board_no_observation():
    rng = np.random.default_rng(0)
    spec = BoardSpec()
    away = se3.make_pose(np.diag([1.0, -1.0, -1.0]), [0.0, 0.0, 0.5])  # the board's back faces the camera
    img, obs = observe_board(spec, away, rng)
    assert obs is None and img.shape == (480, 640)

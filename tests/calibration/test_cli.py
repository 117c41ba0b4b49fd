"""`dppo-robot calibrate intrinsics | hand-eye | verify` as real subprocesses on rendered sessions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml

from dppo_robot.calibration import render, se3
from dppo_robot.calibration.charuco import BoardSpec
from dppo_robot.calibration.schema import CalibrationFile, CameraCalibration, load_calibration, save_calibration
from dppo_robot.typed_config import to_dict
from tests.calibration.synth import K_VGA, NOISE, ONE_LEG_LAYOUT, board_centre, build_tag_scene
from tests.calibration.test_hand_eye import eye_in_hand_session, wrist_camera
from tests.calibration.test_intrinsics import calibration_views

SERIAL = "035422073295"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dppo_robot", "calibrate", *args], capture_output=True, text=True, timeout=120
    )


def write_session(folder: Path, n: int, seed: int, X: np.ndarray) -> Path:
    """An eye-in-hand session (wrist camera at T_hand_cam = X) rendered at 640x480: images + poses YAML."""
    rng = np.random.default_rng(seed)
    _, A, _, _ = eye_in_hand_session(n, rng, X)  # the robot poses (the images are rendered again below)
    spec = BoardSpec()
    Y = se3.make_pose(np.diag([1.0, -1.0, -1.0]), [0.5, 0.1, 0.0]) @ se3.invert(board_centre(spec))
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for i, T_base_hand in enumerate(A):
        T_cam_board = se3.invert(T_base_hand @ X) @ Y
        img = render.render([spec.plane(T_cam_board)], K_VGA, (640, 480), supersample=2, rng=rng, **NOISE)
        cv2.imwrite(str(folder / f"img_{i:03d}.png"), img)
        samples.append({"image": f"img_{i:03d}.png", "ee_pose": se3.to_pos_quat(T_base_hand).tolist()})
    data = {"schema_version": 1, "serial": SERIAL, "mount": "eye_in_hand", "parent_frame": "panda_hand",
            "board": to_dict(spec), "samples": samples}  # fmt: skip
    path = folder / "session.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_intrinsics_then_hand_eye_then_verify(tmp_path):
    calib = tmp_path / "calibration.yaml"
    views = tmp_path / "views"
    views.mkdir()
    for i, img in enumerate(calibration_views(BoardSpec(), 12, np.random.default_rng(3))):
        cv2.imwrite(str(views / f"v{i:02d}.png"), img)
    r = cli("intrinsics", "--calibration", str(calib), "--serial", SERIAL, "--name", "wrist", "--images", str(views))
    assert r.returncode == 0, r.stderr
    assert "reprojection RMS" in r.stdout and f"wrote intrinsics of camera {SERIAL}" in r.stdout
    K = load_calibration(calib).intrinsics(SERIAL).K()
    assert np.allclose(np.diag(K)[:2], 600.0, rtol=1e-2)

    X = wrist_camera(np.random.default_rng(20))
    session = write_session(tmp_path / "session", 15, 21, X)
    r = cli("hand-eye", "--session", str(session), "--calibration", str(calib), "--holdout", "3")
    assert r.returncode == 0, r.stderr
    assert "held out: 3 poses" in r.stdout and "wrote extrinsics" in r.stdout, r.stdout
    ext = load_calibration(calib).cameras[SERIAL].extrinsics
    mm, deg = se3.pose_error(ext.camera_in_parent.matrix(), X)
    print(f"\nCLI hand-eye (intrinsics also calibrated): {mm:.3f} mm {deg:.3f} deg; report {ext.report}")
    assert ext.mount == "eye_in_hand" and ext.parent_frame == "panda_hand" and ext.report.n_poses == 15
    assert mm < 2.0 and deg < 0.3

    fresh = write_session(tmp_path / "fresh", 6, 22, X)  # the same camera, new poses
    r = cli("verify", "--calibration", str(calib), "--session", str(fresh))
    assert r.returncode == 0 and "PASS" in r.stdout, r.stdout + r.stderr
    # a camera that moved 1 cm on the hand fails verification
    c = load_calibration(calib)
    c.cameras[SERIAL].extrinsics.camera_in_parent.translation[0] += 0.01
    save_calibration(c, calib)
    r = cli("verify", "--calibration", str(calib), "--session", str(fresh))
    assert r.returncode == 1 and "FAIL" in r.stdout, r.stdout + r.stderr


def test_verify_an_image_of_the_tags_and_bad_files(tmp_path):
    scene = build_tag_scene(tmp_path / "tex")
    img = scene.render(np.random.default_rng(0))["front"]
    cv2.imwrite(str(tmp_path / "front.png"), img[:, :, ::-1])
    save_calibration(
        CalibrationFile(1, {"sim_front": CameraCalibration("front", scene.intrinsics())}), tmp_path / "c.yaml"
    )
    args = ["--calibration", str(tmp_path / "c.yaml"), "--layout", str(ONE_LEG_LAYOUT), "--serial", "sim_front"]
    r = cli("verify", *args, "--image", str(tmp_path / "front.png"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "base-tag frame from tags" in r.stdout and "square_table_leg4" in r.stdout
    # a non-orthonormal rotation is one clear line and exit status 2
    bad = tmp_path / "bad.yaml"
    text = (Path(__file__).resolve().parents[2] / "calibration" / "example_calibration.yaml").read_text()
    bad.write_text(text.replace("translation: [0.95, 0.35, 0.45]", "translation: [0.95, 0.35]", 1))
    r = cli("verify", "--calibration", str(bad))
    assert r.returncode == 2 and "translation must have 3 values" in r.stderr and "Traceback" not in r.stderr
    assert str(bad) in r.stderr
    r = cli("hand-eye", "--guide")
    assert r.returncode == 0 and "eye_to_hand" in r.stdout

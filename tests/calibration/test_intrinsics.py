"""Intrinsics from rendered ChArUco views, and RealSense factory intrinsics through rs.software_device."""

from __future__ import annotations

import numpy as np
import pytest

from dppo_robot.calibration import render, se3
from dppo_robot.calibration.charuco import BoardDetector, BoardSpec
from dppo_robot.calibration.errors import CalibrationError
from dppo_robot.calibration.intrinsics import calibrate_images, realsense_intrinsics
from tests.calibration.synth import K_VGA, NOISE, board_centre


def calibration_views(spec: BoardSpec, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Board images from varied tilts and image positions (what a calibration session looks like)."""
    out = []
    for _ in range(n):
        R = se3.random_rotation(rng, np.radians(45))
        t = np.array([rng.uniform(-0.12, 0.12), rng.uniform(-0.08, 0.08), rng.uniform(0.45, 0.7)])
        T = se3.make_pose(R, t) @ se3.invert(board_centre(spec))
        out.append(render.render([spec.plane(T)], K_VGA, (640, 480), supersample=2, rng=rng, **NOISE))
    return out


def test_charuco_calibration_recovers_the_camera():
    spec = BoardSpec()
    rng = np.random.default_rng(3)
    images = calibration_views(spec, 14, rng)
    images.append(np.full((480, 640), 128, np.uint8))  # a view without the board is reported, not used
    res = calibrate_images(images, BoardDetector(spec))
    K = res.intrinsics.K()
    print(f"\nintrinsics from 14 views: RMS {res.rms_px:.3f} px, fx {K[0, 0]:.2f} fy {K[1, 1]:.2f} "
          f"cx {K[0, 2]:.2f} cy {K[1, 2]:.2f} (truth 600, 600, 319.5, 239.5)")  # fmt: skip
    assert res.rms_px < 0.3 and len(res.used) == 14
    assert res.rejected == {14: "no board (fewer than 6 corners)"} and np.isnan(res.per_view_rms_px[14])
    assert np.allclose([K[0, 0], K[1, 1]], 600.0, rtol=5e-3)
    assert abs(K[0, 2] - 319.5) < 2.0 and abs(K[1, 2] - 239.5) < 2.0
    assert np.all(np.abs(res.intrinsics.dist()) < 0.05)
    assert res.intrinsics.width == 640 and res.intrinsics.source == "charuco"


def test_too_few_views_is_a_calibration_error():
    spec = BoardSpec()
    with pytest.raises(CalibrationError, match="at least 4 views"):
        calibrate_images(calibration_views(spec, 2, np.random.default_rng(0)), BoardDetector(spec))


def _software_camera():
    rs = pytest.importorskip("pyrealsense2")
    dev = rs.software_device()
    sensor = dev.add_sensor("Color")
    for w, h in ((640, 480), (1280, 720)):
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid = rs.stream.color, 0, w
        vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = w, h, 30, 3, rs.format.rgb8
        intr = rs.intrinsics()
        intr.width, intr.height = w, h
        intr.fx, intr.fy, intr.ppx, intr.ppy = 909.5 * w / 1280, 910.25 * w / 1280, 642.25 * w / 1280, 361.75 * h / 720
        intr.model, intr.coeffs = rs.distortion.inverse_brown_conrady, [0.125, -0.25, 0.001, 0.002, 0.0625]
        vs.intrinsics = intr
        sensor.add_video_stream(vs)
    return dev


def test_realsense_factory_intrinsics_from_a_software_device():
    dev = _software_camera()
    intr = realsense_intrinsics(dev, 1280, 720, 30)
    assert np.allclose(intr.K(), [[909.5, 0, 642.25], [0, 910.25, 361.75], [0, 0, 1]])
    assert np.allclose(intr.dist(), [0.125, -0.25, 0.001, 0.002, 0.0625], atol=1e-7)
    assert intr.source == "realsense_factory:inverse_brown_conrady" and intr.model == "plumb_bob"
    assert realsense_intrinsics(dev, 640, 480, 30).K()[0, 0] == pytest.approx(909.5 / 2)
    with pytest.raises(CalibrationError, match=r"no colour stream 848x480@30 .*1280x720@30"):
        realsense_intrinsics(dev, 848, 480, 30)

"""Camera intrinsics: from ChArUco views (cv2.calibrateCamera) or a RealSense's factory calibration.

`calibrate_views` reports the reprojection RMS over all views and per view, and drops views
whose error is far above the median before the final solve. `realsense_intrinsics` reads the
colour stream profile's intrinsics of any pyrealsense2 device (a camera, or an
rs.software_device in tests) without streaming.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from dppo_robot.calibration.charuco import BoardDetector, BoardObservation
from dppo_robot.calibration.errors import CalibrationError
from dppo_robot.calibration.schema import Intrinsics

MIN_VIEWS = 4


@dataclass
class IntrinsicsResult:
    intrinsics: Intrinsics
    rms_px: float  # over the views used
    per_view_rms_px: np.ndarray  # [n_views] (NaN for views without a detection)
    used: list[int]  # indices of the views used
    rejected: dict[int, str] = field(default_factory=dict)  # view index -> why it was not used


def _per_view_rms(obs: list[BoardObservation], K, dist, rvecs, tvecs) -> np.ndarray:
    out = []
    for o, r, t in zip(obs, rvecs, tvecs):
        proj, _ = cv2.projectPoints(o.object_points, r, t, K, dist)
        out.append(float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - o.image_points) ** 2, axis=1)))))
    return np.array(out)


def calibrate_views(
    views: list[BoardObservation | None],
    image_size: tuple[int, int],
    model: str = "plumb_bob",
    reject_factor: float = 3.0,
    fix_k3: bool = True,
) -> IntrinsicsResult:
    """Intrinsics from board observations of one camera (None = no board found in that image).

    image_size: (width, height). Views with an RMS above reject_factor x the median (and above
    0.5 px) are dropped once and the calibration is repeated without them.
    """
    rejected = {i: "no board (fewer than 6 corners)" for i, v in enumerate(views) if v is None}
    idx = [i for i, v in enumerate(views) if v is not None]
    flags = cv2.CALIB_RATIONAL_MODEL if model == "rational_polynomial" else (cv2.CALIB_FIX_K3 if fix_k3 else 0)
    per_view = np.full(len(views), np.nan)
    for attempt in range(2):
        if len(idx) < MIN_VIEWS:
            raise CalibrationError(f"intrinsics need at least {MIN_VIEWS} views with a board, got {len(idx)}")
        obs = [views[i] for i in idx]
        rms, K, dist, rvecs, tvecs = cv2.calibrateCamera(
            [o.object_points.astype(np.float32) for o in obs],
            [o.image_points.astype(np.float32) for o in obs],
            image_size,
            None,
            None,
            flags=flags,
        )
        errs = _per_view_rms(obs, K, dist, rvecs, tvecs)
        per_view[idx] = errs
        if attempt == 1:
            break
        limit = max(reject_factor * float(np.median(errs)), 0.5)
        bad = [i for i, e in zip(idx, errs) if e > limit]
        if not bad or len(idx) - len(bad) < MIN_VIEWS:
            break
        for i in bad:
            rejected[i] = f"reprojection RMS {per_view[i]:.2f} px > {limit:.2f} px"
        idx = [i for i in idx if i not in bad]
    dist = dist.ravel()
    if model == "plumb_bob":
        dist = dist[:5]
    intr = Intrinsics(image_size[0], image_size[1], K.tolist(), [float(v) for v in dist], model, "charuco", float(rms))
    return IntrinsicsResult(intr, float(rms), per_view, idx, rejected)


def calibrate_images(images: list[np.ndarray], detector: BoardDetector, **kw) -> IntrinsicsResult:
    """Detect the board in every image (all of one size), then `calibrate_views`."""
    if not images:
        raise CalibrationError("no images given")
    h, w = images[0].shape[:2]
    for i, img in enumerate(images):
        if img.shape[:2] != (h, w):
            raise CalibrationError(f"image {i} is {img.shape[1]}x{img.shape[0]}, the first is {w}x{h}")
    return calibrate_views([detector.detect(img) for img in images], (w, h), **kw)


# pyrealsense2 distortion models stored as OpenCV plumb_bob (k1, k2, p1, p2, k3). brown_conrady is
# plumb_bob; the modified and inverse variants are approximated by it (exact when the coefficients
# are zero, as RealSense colour streams usually report). The fisheye models have no equivalent.
_RS_MODELS = ("none", "brown_conrady", "modified_brown_conrady", "inverse_brown_conrady")


def intrinsics_from_rs(intr) -> Intrinsics:
    """pyrealsense2.intrinsics -> Intrinsics (coefficients k1, k2, p1, p2, k3 as OpenCV orders them)."""
    model = str(intr.model).split(".")[-1]
    if model not in _RS_MODELS:
        raise CalibrationError(f"RealSense distortion model '{model}' has no OpenCV pinhole equivalent")
    K = [[intr.fx, 0.0, intr.ppx], [0.0, intr.fy, intr.ppy], [0.0, 0.0, 1.0]]
    coeffs = [float(c) for c in list(intr.coeffs)[:5]] if model != "none" else [0.0] * 5
    return Intrinsics(int(intr.width), int(intr.height), K, coeffs, "plumb_bob", f"realsense_factory:{model}")


def realsense_intrinsics(device, width: int = 1280, height: int = 720, fps: int = 30) -> Intrinsics:
    """Factory intrinsics of a pyrealsense2 device's colour stream at width x height @ fps (no streaming)."""
    import pyrealsense2 as rs

    seen = []
    for sensor in device.query_sensors():
        for prof in sensor.get_stream_profiles():
            if prof.stream_type() != rs.stream.color or not prof.is_video_stream_profile():
                continue
            vp = prof.as_video_stream_profile()
            seen.append(f"{vp.width()}x{vp.height()}@{vp.fps()}")
            if (vp.width(), vp.height(), vp.fps()) == (width, height, fps):
                return intrinsics_from_rs(vp.get_intrinsics())
    raise CalibrationError(
        f"no colour stream {width}x{height}@{fps} on this device (has: {', '.join(sorted(set(seen))) or 'none'})"
    )


def connected_realsense(serial: str = ""):
    """(serial, device) of the connected RealSense with this serial (or the only one connected)."""
    import pyrealsense2 as rs

    devices = list(rs.context().query_devices())
    serials = [d.get_info(rs.camera_info.serial_number) for d in devices]
    if serial:
        if serial not in serials:
            raise CalibrationError(f"no RealSense with serial {serial} connected (connected: {serials or 'none'})")
        return serial, devices[serials.index(serial)]
    if len(devices) != 1:
        raise CalibrationError(f"{len(devices)} RealSense devices connected ({serials}); name one with --serial")
    return serials[0], devices[0]

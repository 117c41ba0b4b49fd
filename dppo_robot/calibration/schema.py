"""The calibration file: YAML with a schema version, one entry per camera serial, validated on load.

    schema_version: 1
    robot_base_to_base_tag: {rotation: 3x3, translation: [3]}   # optional: T_robotbase_basetag
    cameras:
      "035422073295":                       # the RealSense serial, quoted
        name: front
        intrinsics: {width, height, camera_matrix: 3x3, distortion: [5], model: plumb_bob, source, rms_px}
        extrinsics:                         # optional, from `dppo-robot calibrate hand-eye`
          mount: eye_to_hand                # or eye_in_hand
          parent_frame: base                # eye_to_hand: robot base; eye_in_hand: the hand frame
          camera_in_parent: {rotation: 3x3, translation: [3]}   # T_parent_camera (optical frame)
          report: {n_poses, n_inliers, residual_mm, residual_deg, holdout_mm, holdout_deg, holdout_n}

Unknown fields, wrong shapes, non-finite numbers (NaN/inf focal lengths, principal point,
distortion, rotations, translations, report figures), non-orthonormal rotations, a wrong
schema version, YAML aliases and unquoted serials (YAML would read them as numbers and drop
leading zeros) are ConfigErrors naming the file and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as _field
from pathlib import Path
from typing import Literal

import numpy as np
import yaml

from dppo_robot.calibration import se3
from dppo_robot.typed_config import ConfigError, from_dict, safe_load_yaml, to_dict

SCHEMA_VERSION = 1
ROTATION_TOL = 1e-5  # max |R^T R - I| accepted in a file
DIST_SIZES = (4, 5, 8, 12, 14)  # OpenCV distortion vector lengths


@dataclass
class Transform:
    """A rigid transform T_parent_child: rotation [3x3] (columns = child axes in parent) and translation [3] (m)."""

    rotation: list[list[float]] = _field(default_factory=lambda: np.eye(3).tolist())
    translation: list[float] = _field(default_factory=lambda: [0.0, 0.0, 0.0])

    def validate(self) -> None:
        if len(self.rotation) != 3 or any(len(row) != 3 for row in self.rotation):
            raise ValueError(f"rotation must be 3x3, got rows of {[len(row) for row in self.rotation]}")
        R = np.asarray(self.rotation, np.float64)
        if len(self.translation) != 3:
            raise ValueError(f"translation must have 3 values, got {len(self.translation)}")
        if not np.all(np.isfinite(R)) or not np.all(np.isfinite(self.translation)):
            raise ValueError("rotation and translation must be finite")
        err = se3.orthonormality_error(R)
        if err > ROTATION_TOL:
            raise ValueError(f"rotation is not orthonormal: max |R^T R - I| = {err:.2e} (tolerance {ROTATION_TOL:g})")
        if np.linalg.det(R) < 0:
            raise ValueError("rotation has determinant -1 (a reflection, not a rotation)")

    def matrix(self) -> np.ndarray:
        """[4, 4], rotation projected onto SO(3) (removes the rounding of a YAML file)."""
        return se3.make_pose(se3.project_to_so3(np.asarray(self.rotation)), self.translation)

    @classmethod
    def from_matrix(cls, T: np.ndarray) -> Transform:
        T = np.asarray(T, np.float64)
        return cls([[float(v) for v in row] for row in T[:3, :3]], [float(v) for v in T[:3, 3]])


@dataclass
class Intrinsics:
    """Pinhole intrinsics of one stream at width x height (OpenCV conventions: pixel centres at integers)."""

    width: int
    height: int
    camera_matrix: list[list[float]]
    distortion: list[float] = _field(default_factory=lambda: [0.0] * 5)
    model: Literal["plumb_bob", "rational_polynomial"] = "plumb_bob"
    source: str = ""  # charuco | realsense_factory:<model> | simulator | ...
    rms_px: float | None = None  # reprojection RMS of the calibration that produced it

    def validate(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"width and height must be > 0, got {self.width}x{self.height}")
        if len(self.camera_matrix) != 3 or any(len(row) != 3 for row in self.camera_matrix):
            raise ValueError(f"camera_matrix must be 3x3, got rows of {[len(row) for row in self.camera_matrix]}")
        K = np.asarray(self.camera_matrix, np.float64)
        if not np.all(np.isfinite(K)):
            raise ValueError(f"camera_matrix must be finite (focal lengths, principal point), got {K.tolist()}")
        if not np.all(np.isfinite(self.distortion)):
            raise ValueError(f"distortion must be finite, got {list(self.distortion)}")
        if self.rms_px is not None and not (np.isfinite(self.rms_px) and self.rms_px >= 0):
            raise ValueError(f"rms_px must be finite and >= 0 (px), got {self.rms_px}")
        if not np.allclose(K[2], [0, 0, 1]) or K[1, 0] != 0 or K[0, 1] != 0:
            raise ValueError("camera_matrix must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]")
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"focal lengths must be > 0, got fx={K[0, 0]}, fy={K[1, 1]}")
        if not (0 <= K[0, 2] <= self.width and 0 <= K[1, 2] <= self.height):
            raise ValueError(
                f"principal point ({K[0, 2]}, {K[1, 2]}) lies outside the {self.width}x{self.height} image"
            )
        if len(self.distortion) not in DIST_SIZES:
            raise ValueError(f"distortion must have one of {DIST_SIZES} values, got {len(self.distortion)}")
        if self.model == "plumb_bob" and len(self.distortion) > 5:
            raise ValueError(f"plumb_bob takes at most 5 distortion values, got {len(self.distortion)}")

    def K(self) -> np.ndarray:
        return np.asarray(self.camera_matrix, np.float64)

    def dist(self) -> np.ndarray:
        return np.asarray(self.distortion, np.float64)

    def for_size(self, width: int, height: int) -> Intrinsics:
        """The same camera at another resolution of the same aspect ratio (a scaled stream)."""
        if (width, height) == (self.width, self.height):
            return self
        sx, sy = width / self.width, height / self.height
        if abs(sx - sy) > 1e-3:
            raise ConfigError(
                f"image is {width}x{height} but the calibration is {self.width}x{self.height} (different aspect ratio)"
            )
        K = self.K().copy()
        K[0, 0], K[1, 1] = K[0, 0] * sx, K[1, 1] * sy
        K[0, 2], K[1, 2] = (K[0, 2] + 0.5) * sx - 0.5, (K[1, 2] + 0.5) * sy - 0.5
        return Intrinsics(width, height, K.tolist(), list(self.distortion), self.model, self.source, self.rms_px)


@dataclass
class HandEyeReport:
    """How well a hand-eye solution fits its poses and the poses held out from it."""

    n_poses: int = 0
    n_inliers: int = 0
    residual_mm: float = 0.0  # RMS over inliers: consistency of the fixed transform
    residual_deg: float = 0.0
    holdout_n: int = 0
    holdout_mm: float | None = None  # median error on held-out poses
    holdout_deg: float | None = None

    def validate(self) -> None:
        for name in ("n_poses", "n_inliers", "holdout_n"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("residual_mm", "residual_deg", "holdout_mm", "holdout_deg"):
            v = getattr(self, name)
            if v is not None and not (np.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {v}")


@dataclass
class Extrinsics:
    """Where the camera is: T_parent_camera, parent = robot base (eye_to_hand) or the hand (eye_in_hand)."""

    mount: Literal["eye_in_hand", "eye_to_hand"]
    parent_frame: str
    camera_in_parent: Transform
    report: HandEyeReport | None = None


@dataclass
class CameraCalibration:
    name: str = ""
    intrinsics: Intrinsics | None = None
    extrinsics: Extrinsics | None = None


@dataclass
class CalibrationFile:
    schema_version: int
    cameras: dict[str, CameraCalibration] = _field(default_factory=dict)
    # T_robotbase_basetag: FurnitureBench's base tag frame in the robot base frame (optional).
    robot_base_to_base_tag: Transform | None = None
    notes: str = ""

    def validate(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {self.schema_version} is not supported (this code reads {SCHEMA_VERSION})"
            )
        for serial in self.cameras:
            if not serial.strip():
                raise ValueError("a camera serial is empty")

    def camera(self, serial: str, source: str = "calibration") -> CameraCalibration:
        if serial not in self.cameras:
            raise ConfigError(
                f"{source}: no camera with serial '{serial}' (known: {', '.join(self.cameras) or 'none'})"
            )
        return self.cameras[serial]

    def intrinsics(self, serial: str, source: str = "calibration") -> Intrinsics:
        cam = self.camera(serial, source)
        if cam.intrinsics is None:
            raise ConfigError(f"{source}: camera '{serial}' has no intrinsics")
        return cam.intrinsics


def _check_serial_keys(data: object, source: str) -> None:
    if isinstance(data, dict) and isinstance(data.get("cameras"), dict):
        for key in data["cameras"]:
            if not isinstance(key, str):
                raise ConfigError(
                    f"{source}: field 'cameras.{key}': the serial must be a quoted string (YAML read it as "
                    f"{type(key).__name__}, which drops leading zeros)"
                )


def load_calibration(path: str | Path) -> CalibrationFile:
    """Load and validate a calibration file (ConfigError naming the file and field)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read calibration ({getattr(e, 'strerror', None) or e})") from None
    data = safe_load_yaml(text, str(path))
    _check_serial_keys(data, str(path))
    return from_dict(CalibrationFile, data, str(path))


class _Quoted(str):
    """A string YAML writes in quotes (serials: some YAML readers take 035422073295 for a number)."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Quoted, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", str(v), style='"'))


def save_calibration(calib: CalibrationFile, path: str | Path) -> Path:
    """Write a calibration file (serials quoted, rotations at full precision); validated first."""
    calib = from_dict(CalibrationFile, to_dict(calib), "<calibration to save>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = to_dict(calib)
    data["cameras"] = {_Quoted(k): v for k, v in data["cameras"].items()}
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=120)
    path.write_text(f"# dppo_robot camera calibration (schema {SCHEMA_VERSION}); see calibration/README.md\n{text}")
    return path


def load_or_new(path: str | Path) -> CalibrationFile:
    """The calibration at path, or an empty one when the file does not exist yet."""
    return load_calibration(path) if Path(path).exists() else CalibrationFile(SCHEMA_VERSION)

"""Typed config of the part-pose estimator and its ROS node (YAML, loaded strictly).

layout: one_leg_tags.yaml                 # relative paths are relative to this file
calibration: calibration.yaml
cameras:
  - {name: front, serial: "035422073295", image_topic: /camera/front/color/image_raw}
output_topic: /part_poses
frame_id: base_tag
sync_s: 0.05
fusion: {max_rms_px: 2.0, max_disagreement_m: 0.01, max_disagreement_deg: 10.0}
tracking: {max_speed_m_s: 1.0, ..., hold_s: 0.5}
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as _field
from pathlib import Path

import numpy as np

from dppo_robot.calibration import se3
from dppo_robot.calibration.layout import TagLayout, load_layout
from dppo_robot.calibration.part_poses import CameraEstimator, FusionConfig, PartPoseEstimator, TrackingConfig
from dppo_robot.calibration.schema import CalibrationFile, load_calibration
from dppo_robot.typed_config import ConfigError, load_yaml


@dataclass
class PartCamera:
    name: str
    serial: str  # key into the calibration file
    image_topic: str = ""
    # Use the hand-eye extrinsics (eye_to_hand) when the image shows no base tag; needs
    # robot_base_to_base_tag in the calibration file.
    use_extrinsics: bool = False


@dataclass
class PartPoseConfig:
    layout: str
    calibration: str
    cameras: list[PartCamera]
    output_topic: str = "/part_poses"
    frame_id: str = "base_tag"
    sync_s: float = 0.05  # camera frames within this of an image's stamp are fused with it
    fusion: FusionConfig = _field(default_factory=FusionConfig)
    tracking: TrackingConfig = _field(default_factory=TrackingConfig)

    def validate(self) -> None:
        if not self.cameras:
            raise ValueError("cameras: at least one camera is needed")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names repeat: {names}")
        if self.sync_s < 0:
            raise ValueError("sync_s must be >= 0")


def load_part_pose_config(path: str | Path) -> PartPoseConfig:
    """Load the config; layout and calibration paths resolved against the config file's folder."""
    path = Path(path)
    cfg = load_yaml(PartPoseConfig, path)
    cfg.layout = str((path.parent / cfg.layout).resolve())
    cfg.calibration = str((path.parent / cfg.calibration).resolve())
    return cfg


def camera_in_base_tag(calib: CalibrationFile, serial: str, source: str) -> np.ndarray:
    """T_basetag_cam of a fixed (eye_to_hand) camera from its extrinsics and robot_base_to_base_tag."""
    cam = calib.camera(serial, source)
    ext = cam.extrinsics
    if ext is None or ext.mount != "eye_to_hand":
        raise ConfigError(f"{source}: camera '{serial}' has no eye_to_hand extrinsics (use_extrinsics needs them)")
    if calib.robot_base_to_base_tag is None:
        raise ConfigError(f"{source}: use_extrinsics needs robot_base_to_base_tag in the calibration file")
    return se3.invert(calib.robot_base_to_base_tag.matrix()) @ ext.camera_in_parent.matrix()


def build_estimator(cfg: PartPoseConfig) -> tuple[PartPoseEstimator, TagLayout]:
    """The estimator for a config: layout + per-camera intrinsics (and extrinsics) from the files."""
    layout = load_layout(cfg.layout)
    calib = load_calibration(cfg.calibration)
    cams = []
    for c in cfg.cameras:
        T = camera_in_base_tag(calib, c.serial, cfg.calibration) if c.use_extrinsics else None
        cams.append(CameraEstimator(c.name, layout, calib.intrinsics(c.serial, cfg.calibration), T, cfg.fusion))
    return PartPoseEstimator(layout, cams, cfg.fusion, cfg.tracking, cfg.sync_s), layout

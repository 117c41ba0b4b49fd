"""A hand-eye capture session: board images and the robot pose at each, in one YAML.

    schema_version: 1
    serial: "035422073295"           # the camera (key into the calibration file)
    mount: eye_in_hand               # or eye_to_hand
    parent_frame: panda_hand         # the frame the robot pose ends in (eye_in_hand) / "base"
    board: {squares_x: 7, squares_y: 5, square_m: 0.04, marker_m: 0.03, dictionary: DICT_5X5_100}
    samples:
      - {image: img_000.png, ee_pose: [x, y, z, qx, qy, qz, qw]}   # T_base_hand (m, xyzw)

Images are relative to the session file.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as _field
from pathlib import Path
from typing import Literal

import numpy as np

from dppo_robot.calibration import se3
from dppo_robot.calibration.charuco import BoardSpec
from dppo_robot.calibration.schema import SCHEMA_VERSION
from dppo_robot.typed_config import load_yaml


@dataclass
class HandEyeSample:
    image: str
    ee_pose: list[float]  # T_base_hand: position (m) + quaternion xyzw

    def validate(self) -> None:
        if len(self.ee_pose) != 7:
            raise ValueError(f"ee_pose needs 7 values (x, y, z, qx, qy, qz, qw), got {len(self.ee_pose)}")
        n = float(np.linalg.norm(self.ee_pose[3:]))
        if abs(n - 1.0) > 1e-3:
            raise ValueError(f"ee_pose quaternion has norm {n:.4f}, not 1")

    def T_base_hand(self) -> np.ndarray:
        return se3.from_pos_quat(self.ee_pose[:3], np.asarray(self.ee_pose[3:]) / np.linalg.norm(self.ee_pose[3:]))


@dataclass
class HandEyeSession:
    schema_version: int
    serial: str
    mount: Literal["eye_in_hand", "eye_to_hand"]
    samples: list[HandEyeSample]
    board: BoardSpec = _field(default_factory=BoardSpec)
    parent_frame: str = ""

    def validate(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {self.schema_version} is not supported (this code reads {SCHEMA_VERSION})"
            )
        if not self.parent_frame:
            self.parent_frame = "base" if self.mount == "eye_to_hand" else "hand"


def load_session(path: str | Path) -> tuple[HandEyeSession, Path]:
    """(session, folder its image paths are relative to)."""
    path = Path(path)
    return load_yaml(HandEyeSession, path), path.parent


@dataclass
class SessionObservations:
    """What the images of a session show: per sample, the board pose (or None) and its points."""

    names: list[str]
    T_base_hand: np.ndarray  # [N, 4, 4]
    T_cam_board: list[np.ndarray | None]
    board_rms_px: list[float]
    object_points: list[np.ndarray | None]
    image_points: list[np.ndarray | None]

    def usable(self) -> np.ndarray:
        return np.array([i for i, T in enumerate(self.T_cam_board) if T is not None], int)


def observe_session(session: HandEyeSession, root: Path, K: np.ndarray, dist: np.ndarray) -> SessionObservations:
    """Detect the board in every sample's image and solve its pose in the camera."""
    from dppo_robot.calibration.charuco import BoardDetector, board_pose
    from dppo_robot.calibration.commands.inputs import read_image

    det = BoardDetector(session.board)
    obs = SessionObservations([], np.stack([s.T_base_hand() for s in session.samples]), [], [], [], [])
    for s in session.samples:
        o = det.detect(read_image(root / s.image))
        obs.names.append(s.image)
        if o is None:
            obs.T_cam_board.append(None)
            obs.board_rms_px.append(float("nan"))
            obs.object_points.append(None)
            obs.image_points.append(None)
            continue
        T, rms = board_pose(o, K, dist)
        obs.T_cam_board.append(T)
        obs.board_rms_px.append(rms)
        obs.object_points.append(o.object_points)
        obs.image_points.append(o.image_points)
    return obs

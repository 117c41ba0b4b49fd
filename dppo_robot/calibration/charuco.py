"""ChArUco boards: the board spec, its printable image, corner detection and the board pose.

Board frame (OpenCV >= 4.6): origin at the board's top-left outer corner, x right, y down,
z into the board; chessboard corner k of a (squares_x, squares_y) board lies at
((k % (squares_x - 1) + 1) * square_m, (k // (squares_x - 1) + 1) * square_m, 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dppo_robot.calibration import se3
from dppo_robot.calibration.render import Plane, pixel_to_plane

MIN_CORNERS = 6  # fewer corners than this give no view (pose or calibration)


@dataclass
class BoardSpec:
    """A ChArUco board: squares, their edge and the marker edge (m), the ArUco dictionary."""

    squares_x: int = 7
    squares_y: int = 5
    square_m: float = 0.04
    marker_m: float = 0.03
    dictionary: str = "DICT_5X5_100"

    def validate(self) -> None:
        if self.squares_x < 3 or self.squares_y < 3:
            raise ValueError(f"a board needs at least 3x3 squares, got {self.squares_x}x{self.squares_y}")
        if not 0 < self.marker_m < self.square_m:
            raise ValueError(f"marker_m ({self.marker_m}) must be > 0 and smaller than square_m ({self.square_m})")
        if not self.dictionary.startswith("DICT_") or not hasattr(cv2.aruco, self.dictionary):
            raise ValueError(f"unknown ArUco dictionary '{self.dictionary}' (e.g. DICT_5X5_100, DICT_APRILTAG_36h11)")

    def board(self) -> cv2.aruco.CharucoBoard:
        d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard((self.squares_x, self.squares_y), self.square_m, self.marker_m, d)

    def image(self, px_per_m: float = 5000.0, margin_px: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 printable image, homography texture pixel -> board metres)."""
        w = round(self.squares_x * self.square_m * px_per_m) + 2 * margin_px
        h = round(self.squares_y * self.square_m * px_per_m) + 2 * margin_px
        img = self.board().generateImage((w, h), marginSize=margin_px, borderBits=1)
        scale = (w - 2 * margin_px) / (self.squares_x * self.square_m)  # after rounding
        return img, pixel_to_plane(scale, (margin_px - 0.5, margin_px - 0.5))

    def plane(self, T_cam_board: np.ndarray, px_per_m: float = 5000.0) -> Plane:
        """The board as a renderable plane (white margin of one square) at T_cam_board."""
        margin = round(self.square_m * px_per_m)
        img, H = self.image(px_per_m, margin)
        return Plane(img, H, T_cam_board)


@dataclass
class BoardObservation:
    """Chessboard corners of one image: ids, object points [N, 3] (board frame, m), image points [N, 2] px."""

    ids: np.ndarray
    object_points: np.ndarray
    image_points: np.ndarray


class BoardDetector:
    def __init__(self, spec: BoardSpec) -> None:
        self.spec = spec
        self.board = spec.board()
        self._detector = cv2.aruco.CharucoDetector(self.board)

    def detect(self, image: np.ndarray) -> BoardObservation | None:
        """The board's corners in an image, or None when fewer than MIN_CORNERS were found."""
        from dppo_robot.calibration.apriltags import to_gray

        corners, ids, _, _ = self._detector.detectBoard(to_gray(image))
        if ids is None or len(ids) < MIN_CORNERS:
            return None
        obj, img = self.board.matchImagePoints(corners, ids)
        return BoardObservation(
            ids.ravel().copy(), obj.reshape(-1, 3).astype(np.float64), img.reshape(-1, 2).astype(np.float64)
        )


def board_pose(obs: BoardObservation, K: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, float]:
    """(T_cam_board [4, 4], reprojection RMS px) by planar PnP (IPPE) refined with Levenberg-Marquardt."""
    ok, rvec, tvec = cv2.solvePnP(obs.object_points, obs.image_points, K, dist, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        raise ValueError("board PnP failed")
    rvec, tvec = cv2.solvePnPRefineLM(obs.object_points, obs.image_points, K, dist, rvec, tvec)
    proj, _ = cv2.projectPoints(obs.object_points, rvec, tvec, K, dist)
    rms = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - obs.image_points) ** 2, axis=1))))
    return se3.from_rvec_tvec(rvec, tvec), rms

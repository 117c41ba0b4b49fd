"""A pinhole renderer of planar textures (boards, tags) with known poses, for synthetic-truth checks.

Each plane is a grayscale texture plus the homography from its pixels to metric plane
coordinates (x, y, z=0 in the plane frame). The image is rendered `supersample` times larger
with cv2.warpPerspective and box-filtered down, then blurred and given Gaussian noise.
OpenCV pixel convention: pixel centres at integer coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dppo_robot.calibration.apriltags import FAMILIES


@dataclass
class Plane:
    texture: np.ndarray  # uint8 [h, w]
    plane_from_pixel: np.ndarray  # [3, 3]: texture pixel (u, v, 1) -> plane metres (x, y, 1)
    T_cam_plane: np.ndarray  # [4, 4]


def pixel_to_plane(px_per_m: float, origin_px: tuple[float, float]) -> np.ndarray:
    """Homography for a texture whose plane origin sits at texture pixel `origin_px` (pixel centres at integers)."""
    s = 1.0 / px_per_m
    return np.array([[s, 0.0, -origin_px[0] * s], [0.0, s, -origin_px[1] * s], [0.0, 0.0, 1.0]])


def tag_texture(tag_id: int, cells_px: int = 16, white_cells: int = 1, family: str = "tag36h11") -> np.ndarray:
    """uint8 image of a tag: 8x8 cells (6x6 data + black border) inside a white margin of `white_cells`."""
    d = cv2.aruco.getPredefinedDictionary(FAMILIES[family])
    side = 8 * cells_px
    tag = cv2.aruco.generateImageMarker(d, tag_id, side, borderBits=1)
    return cv2.copyMakeBorder(tag, *(4 * [white_cells * cells_px]), cv2.BORDER_CONSTANT, value=255)


def tag_plane(tag_id: int, size: float, T_cam_tag: np.ndarray, cells_px: int = 16) -> Plane:
    """A tag of black-square edge `size` whose AprilTag frame (x right, y down, z in) is at T_cam_tag."""
    tex = tag_texture(tag_id, cells_px)
    centre = (tex.shape[1] - 1) / 2.0
    # The black square spans 8 * cells_px texture pixels: its edges lie half a pixel outside the edge pixel centres.
    return Plane(tex, pixel_to_plane(8 * cells_px / size, (centre, centre)), T_cam_tag)


def render(
    planes: list[Plane],
    K: np.ndarray,
    size: tuple[int, int] = (640, 480),
    supersample: int = 3,
    background: int = 128,
    blur_sigma: float = 0.0,
    noise_std: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """uint8 [H, W] image of the planes (later planes drawn over earlier ones; back faces skipped)."""
    w, h = size
    s = supersample
    S = np.array([[s, 0.0, (s - 1) / 2.0], [0.0, s, (s - 1) / 2.0], [0.0, 0.0, 1.0]])  # low-res -> high-res pixels
    K_hi = S @ np.asarray(K, np.float64)
    out = np.full((h * s, w * s), float(background), np.float32)
    for p in planes:
        R, t = p.T_cam_plane[:3, :3], p.T_cam_plane[:3, 3]
        if float(R[:, 2] @ t) <= 0:  # z points into the texture: the camera must be on the other side
            continue
        H = K_hi @ np.column_stack([R[:, 0], R[:, 1], t]) @ p.plane_from_pixel
        tex = p.texture.astype(np.float32)
        # premultiplied alpha: the texture and its coverage warped with a zero border, then composited
        warped = cv2.warpPerspective(tex, H, (w * s, h * s), flags=cv2.INTER_LINEAR, borderValue=0.0)
        alpha = cv2.warpPerspective(np.ones_like(tex), H, (w * s, h * s), flags=cv2.INTER_LINEAR, borderValue=0.0)
        out = out * (1.0 - alpha) + warped
    img = cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA)
    if blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur_sigma)
    if noise_std > 0:
        img = img + (rng or np.random.default_rng(0)).normal(0.0, noise_std, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)

"""AprilTag (tag36h11) detection with OpenCV's ArUco module, and poses of rigid tag groups by PnP.

Tag frame (AprilTag convention, as FurnitureBench): origin at the tag centre, x right and y down
in the tag image, z into the tag. Corners come in OpenCV's order: top-left, top-right,
bottom-right, bottom-left of the tag image. Shapes: corners [4, 2] px; object points [N, 3] m;
poses [4, 4].
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dppo_robot.calibration import se3

FAMILIES = {"tag36h11": cv2.aruco.DICT_APRILTAG_36h11}
# OpenCV's square-marker frame (y up, z out of the tag) -> the AprilTag frame (y down, z in).
CV_TAG_FROM_APRILTAG = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass
class TagObservation:
    tag_id: int
    corners: np.ndarray  # [4, 2] px, top-left, top-right, bottom-right, bottom-left


def tag_corners(size: float) -> np.ndarray:
    """[4, 3] corners of a tag of edge `size` in its own (AprilTag) frame, in detection order."""
    h = size / 2.0
    return np.array([[-h, -h, 0.0], [h, -h, 0.0], [h, h, 0.0], [-h, h, 0.0]])


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 [H, W] from [H, W], [H, W, 3] (RGB or BGR: the weights barely matter) or [H, W, 4]."""
    img = np.asarray(image)
    if img.ndim == 2:
        return np.ascontiguousarray(img, np.uint8)
    if img.shape[2] == 4:
        img = img[:, :, :3]
    return cv2.cvtColor(np.ascontiguousarray(img, np.uint8), cv2.COLOR_RGB2GRAY)


# Corner refinement. "edges" (default): OpenCV's contour corners, then the outer edges of the
# black border are located to sub-pixel accuracy (mid-level crossings along the edge normals),
# fitted with lines and intersected. OpenCV's own refinements fall short on tag corners:
# cornerSubPix, made for saddle points, slides along the edges of an L-shaped corner (~0.6 px
# on 25 px tags); the AprilTag quad fit shifts corners by half a pixel (its pixel centres sit
# at +0.5), leaves errors up to ~0.4 px on sharp edges and takes ~0.5 s on a noisy 1280x720
# image. Measured in tests/calibration/test_apriltags.py.
_REFINE = {
    "edges": (cv2.aruco.CORNER_REFINE_NONE, 0.0),
    "apriltag": (cv2.aruco.CORNER_REFINE_APRILTAG, -0.5),
    "subpix": (cv2.aruco.CORNER_REFINE_SUBPIX, 0.0),
    "none": (cv2.aruco.CORNER_REFINE_NONE, 0.0),
}


def _edge_line(gray: np.ndarray, p0: np.ndarray, p1: np.ndarray, centre: np.ndarray, reach: float) -> np.ndarray | None:
    """[x, y, dx, dy]: the outer edge of the black border between corners p0 and p1, or None.

    Profiles across the edge (white margin -> black border) are sampled along its middle 70 %;
    each gives the crossing of the level halfway between its own white and the edge's black
    (a low percentile over all profiles: a thin blurred border never reaches black in a single
    profile, which would bias the crossing outwards). A line is fitted to the crossings with
    outliers dropped.
    """
    d = p1 - p0
    length = float(np.linalg.norm(d))
    if length < 4:
        return None
    d /= length
    n = np.array([-d[1], d[0]])
    if float(n @ (centre - p0)) > 0:
        n = -n  # n points out of the tag (towards the white margin)
    ts = np.linspace(0.15, 0.85, max(4, int(length * 0.7)))
    offs = np.linspace(reach, -reach, int(reach * 8) + 1)  # outside (white) -> inside (black)
    base = p0 + np.outer(ts * length, d)
    pts = base[:, None, :] + offs[None, :, None] * n
    prof = cv2.remap(
        gray,
        pts[..., 0].astype(np.float32),
        pts[..., 1].astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    ).astype(np.float64)
    third = len(offs) // 3
    black = float(np.percentile(prof[:, -third:], 5))
    found = []
    for k in range(len(ts)):
        pr = prof[k]
        white = float(pr[:third].max())
        if white - black < 20:
            continue
        mid = 0.5 * (white + black)
        below = np.nonzero(pr < mid)[0]
        if len(below) == 0 or below[0] == 0:
            continue
        i = below[0]
        f = (pr[i - 1] - mid) / (pr[i - 1] - pr[i])
        found.append(base[k] + (offs[i - 1] + f * (offs[i] - offs[i - 1])) * n)
    if len(found) < 3:
        return None
    P = np.array(found)
    for _ in range(2):  # drop crossings far off the line (a data cell mistaken for the border)
        c = P.mean(0)
        direction = np.linalg.svd(P - c)[2][0]
        r = (P - c) @ np.array([-direction[1], direction[0]])
        dev = np.abs(r - np.median(r))
        keep = dev <= max(0.3, 4.0 * 1.4826 * float(np.median(dev)))
        if keep.all() or keep.sum() < 3:
            break
        P = P[keep]
    c = P.mean(0)
    return np.concatenate([c, np.linalg.svd(P - c)[2][0]])


def refine_corners(gray: np.ndarray, corners: np.ndarray, iters: int = 5) -> np.ndarray:
    """Corners [4, 2] re-estimated as intersections of the tag's four fitted outer edges.

    Iterates until the corners move less than 0.01 px; keeps the given corners when an edge
    cannot be fitted or the corners would move by more than about half a cell.
    """
    c0 = np.asarray(corners, np.float64)
    c = c0.copy()
    sides = np.linalg.norm(np.roll(c0, -1, axis=0) - c0, axis=1)  # side k: corner k -> k + 1
    # profiles across edge k span its neighbours' cell width: stay within the border and the margin
    reach = [float(np.clip(0.75 * (sides[k - 1] + sides[(k + 1) % 4]) / 16.0, 1.0, 4.0)) for k in range(4)]
    limit = max(2.0, 0.6 * float(sides.min()) / 8.0)
    for _ in range(iters):
        centre = c.mean(0)
        lines = [_edge_line(gray, c[k], c[(k + 1) % 4], centre, reach[k]) for k in range(4)]
        if any(ln is None for ln in lines):
            return c0
        new = np.empty_like(c)
        for k in range(4):  # corner k lies on edges k-1 and k
            a, b = lines[k - 1], lines[k]
            A = np.column_stack([a[2:], -b[2:]])
            if abs(np.linalg.det(A)) < 1e-6:
                return c0
            s, _ = np.linalg.solve(A, b[:2] - a[:2])
            new[k] = a[:2] + s * a[2:]
        if np.max(np.linalg.norm(new - c0, axis=1)) > limit:  # a bad fit: keep the detector's corners
            return c0
        step = float(np.max(np.abs(new - c)))
        c = new
        if step < 0.01:
            break
    return c


class TagDetector:
    """tag36h11 detection with sub-pixel corners (OpenCV pixel convention: centres at integers)."""

    def __init__(self, family: str = "tag36h11", refine: str = "edges", min_perimeter_rate: float = 0.02) -> None:
        if family not in FAMILIES:
            raise ValueError(f"tag family '{family}' is not supported (supported: {list(FAMILIES)})")
        if refine not in _REFINE:
            raise ValueError(f"corner refinement '{refine}' is not one of {list(_REFINE)}")
        params = cv2.aruco.DetectorParameters()
        params.cornerRefinementMethod, self._shift = _REFINE[refine]
        self._edges = refine == "edges"
        params.minMarkerPerimeterRate = min_perimeter_rate
        self._detector = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(FAMILIES[family]), params)

    def detect(self, image: np.ndarray) -> list[TagObservation]:
        gray = to_gray(image)
        corners, ids, _ = self._detector.detectMarkers(gray)
        if ids is None:
            return []
        out = []
        for i, c in zip(ids.ravel(), corners):
            c = np.asarray(c, np.float64).reshape(4, 2) + self._shift
            out.append(TagObservation(int(i), refine_corners(gray, c) if self._edges else c))
        return out


def min_side(corners: np.ndarray) -> float:
    """Shortest side (px) of a tag's image quadrilateral."""
    return float(np.min(np.linalg.norm(np.roll(corners, -1, axis=0) - corners, axis=1)))


def _reprojection_rms(
    obj: np.ndarray, img: np.ndarray, T_cam_obj: np.ndarray, K: np.ndarray, dist: np.ndarray
) -> float:
    rvec, tvec = se3.to_rvec_tvec(T_cam_obj)
    proj, _ = cv2.projectPoints(obj, rvec, tvec, K, dist)
    return float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - img) ** 2, axis=1))))


def single_tag_poses(corners: np.ndarray, size: float, K: np.ndarray, dist: np.ndarray) -> list[np.ndarray]:
    """Both IPPE_SQUARE solutions T_cam_tag [4, 4] for one tag, best first (planar-target ambiguity)."""
    obj_cv = tag_corners(size) * np.array([1.0, -1.0, 1.0])  # OpenCV's IPPE_SQUARE corner layout (y up)
    n, rvecs, tvecs, _ = cv2.solvePnPGeneric(
        obj_cv, np.asarray(corners, np.float64).reshape(4, 1, 2), K, dist, flags=cv2.SOLVEPNP_IPPE_SQUARE
    )
    return [se3.from_rvec_tvec(r, t) @ CV_TAG_FROM_APRILTAG for r, t in zip(rvecs[:n], tvecs[:n])]


@dataclass
class GroupPose:
    """The pose of a rigid tag group in one image."""

    T_cam_group: np.ndarray  # [4, 4]
    rms_px: float  # reprojection RMS over all corners used
    tag_ids: list[int]
    n_points: int
    area_px: float  # summed image area of the tags used (how much the fit sees)
    # covariance [6, 6] of (rotation vector, translation) of T_cam_group for 1 px corner noise,
    # both in the camera frame: (J^T J)^-1 of the projection Jacobian. Scale by sigma_px^2.
    cov_unit: np.ndarray | None = None

    @property
    def depth_m(self) -> float:
        return float(self.T_cam_group[2, 3])


def solve_group(
    observations: list[TagObservation],
    group: dict[int, np.ndarray],
    tag_size: float,
    K: np.ndarray,
    dist: np.ndarray,
    min_side_px: float = 0.0,
) -> GroupPose | None:
    """Pose of a rigid tag group (tag id -> T_group_tag) from its visible tags, or None.

    Tags with a side shorter than min_side_px (far, or seen nearly edge-on) are not used.

    Candidates are both IPPE_SQUARE solutions of every visible tag, moved to the group frame;
    the one with the least reprojection error over all the group's corners seeds a
    Levenberg-Marquardt refinement on all of them.
    """
    seen = [o for o in observations if o.tag_id in group and min_side(o.corners) >= min_side_px]
    if not seen:
        return None
    corners = tag_corners(tag_size)
    obj = np.concatenate([(group[o.tag_id][:3, :3] @ corners.T).T + group[o.tag_id][:3, 3] for o in seen])
    img = np.concatenate([o.corners for o in seen])
    best, best_err = None, np.inf
    for o in seen:
        for T_cam_tag in single_tag_poses(o.corners, tag_size, K, dist):
            T = T_cam_tag @ se3.invert(group[o.tag_id])
            err = _reprojection_rms(obj, img, T, K, dist)
            if err < best_err:
                best, best_err = T, err
    rvec, tvec = se3.to_rvec_tvec(best)
    rvec, tvec = cv2.solvePnPRefineLM(obj, img, K, dist, rvec, tvec)
    T = se3.from_rvec_tvec(rvec, tvec)
    err = _reprojection_rms(obj, img, T, K, dist)
    if err > best_err:  # LM never makes it worse, but keep the guard
        T, err = best, best_err
    area = sum(float(cv2.contourArea(o.corners.astype(np.float32))) for o in seen)
    return GroupPose(T, err, [o.tag_id for o in seen], len(img), area, _pose_covariance(obj, T, K, dist))


def _pose_covariance(obj: np.ndarray, T_cam_obj: np.ndarray, K: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """(J^T J)^-1 [6, 6] for a small rotation (camera frame, left) and translation (camera frame) of T_cam_obj."""
    eps = 1e-6
    base = _project(obj, T_cam_obj, K, dist)
    J = np.empty((base.size, 6))
    for k in range(6):
        d = np.zeros(6)
        d[k] = eps
        T = se3.make_pose(se3.from_rvec_tvec(d[:3], np.zeros(3))[:3, :3] @ T_cam_obj[:3, :3], T_cam_obj[:3, 3] + d[3:])
        J[:, k] = (_project(obj, T, K, dist) - base).ravel() / eps
    return np.linalg.pinv(J.T @ J)


def _project(obj: np.ndarray, T_cam_obj: np.ndarray, K: np.ndarray, dist: np.ndarray) -> np.ndarray:
    rvec, tvec = se3.to_rvec_tvec(T_cam_obj)
    return cv2.projectPoints(obj, rvec, tvec, K, dist)[0].reshape(-1, 2)

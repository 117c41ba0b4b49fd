"""Part poses in the base-tag frame from AprilTag images: per-camera PnP, fusion, jump rejection.

Per image (`CameraEstimator`): detect tags, solve the base-tag group (T_cam_base) and every
part's tag group (T_cam_part) by PnP over all visible corners, and express parts in the base-tag
frame (T_base_part = T_cam_base^-1 T_cam_part). A camera that sees no base tag can use its
hand-eye extrinsics instead (T_base_cam given). Across cameras (`fuse`): the largest set of
mutually agreeing estimates is averaged: positions weighted by their PnP covariances (a
camera's poor depth is outweighed by another's lateral view), rotations by a Karcher mean;
the rest are rejected. Over time (`PoseTracker`): a pose that jumps faster than a part can move
is rejected unless it repeats consistently (`relock_frames`); a part that is not seen keeps its
last pose for `hold_s`, then becomes NaN. Output rows: position [3] + quaternion xyzw [4].
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dppo_robot.calibration import se3
from dppo_robot.calibration.apriltags import GroupPose, TagDetector, TagObservation, solve_group
from dppo_robot.calibration.layout import TagLayout
from dppo_robot.calibration.schema import Intrinsics


@dataclass
class FusionConfig:
    max_rms_px: float = 2.0  # a tag group fitting worse than this is not used
    min_tag_side_px: float = 12.0  # smaller (far or edge-on) tags are not used
    max_disagreement_m: float = 0.01  # camera estimates farther apart than this do not agree
    max_disagreement_deg: float = 10.0


@dataclass
class TrackingConfig:
    max_speed_m_s: float = 1.0  # faster apparent motion between accepted poses is a jump
    max_angular_speed_deg_s: float = 360.0
    jump_margin_m: float = 0.01  # allowed on top of speed x dt
    jump_margin_deg: float = 10.0
    relock_frames: int = 3  # this many consecutive, mutually consistent jumped poses are accepted
    hold_s: float = 0.5  # an unseen part keeps its last pose this long, then NaN

    def validate(self) -> None:
        if self.relock_frames < 1:
            raise ValueError("relock_frames must be >= 1")
        if self.hold_s < 0:
            raise ValueError("hold_s must be >= 0")


@dataclass
class PartEstimate:
    part: str
    T_base_part: np.ndarray  # [4, 4]
    weight: float  # of the rotation in the SE(3) mean: 1 / trace of the rotation covariance
    camera: str
    rms_px: float
    tag_ids: list[int]
    cov_t: np.ndarray | None = None  # [3, 3] position covariance in the base-tag frame (1 px corner noise)


def _part_in_base(
    base: GroupPose | None, T_cam_base: np.ndarray, gp: GroupPose
) -> tuple[np.ndarray, np.ndarray, float]:
    """(T_base_part, position covariance [3, 3] in the base frame, rotation weight), both fits' errors propagated.

    p_base = R_cb^T (p_cam - t_cb): the part's own covariance rotated into the base frame, plus the
    base fit's rotation (lever arm p_cam - t_cb) and translation errors.
    """
    R_cb, t_cb = T_cam_base[:3, :3], T_cam_base[:3, 3]
    T = se3.invert(T_cam_base) @ gp.T_cam_group
    cov_p = gp.cov_unit
    cov = R_cb.T @ cov_p[3:, 3:] @ R_cb
    cov_r = cov_p[:3, :3].copy()
    if base is not None and base.cov_unit is not None:
        v = gp.T_cam_group[:3, 3] - t_cb
        vx = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
        J = R_cb.T @ np.hstack([vx, -np.eye(3)])
        cov = cov + J @ base.cov_unit @ J.T
        cov_r = cov_r + base.cov_unit[:3, :3]
    return T, cov, 1.0 / max(float(np.trace(cov_r)), 1e-18)


@dataclass
class FrameResult:
    camera: str
    stamp_s: float
    T_cam_base: np.ndarray | None
    base_source: str  # "tags", "extrinsics" or "" (no base frame: no part poses)
    base: GroupPose | None
    parts: dict[str, PartEstimate]
    detections: list[TagObservation]
    unknown_ids: list[int] = field(default_factory=list)


class CameraEstimator:
    """One camera: image -> part poses in the base-tag frame."""

    def __init__(
        self,
        name: str,
        layout: TagLayout,
        intrinsics: Intrinsics,
        T_base_cam: np.ndarray | None = None,
        fusion: FusionConfig | None = None,
        detector: TagDetector | None = None,
    ) -> None:
        self.name, self.layout, self.intrinsics = name, layout, intrinsics
        self.T_base_cam = T_base_cam
        self.cfg = fusion or FusionConfig()
        self.detector = detector or TagDetector(layout.family)
        self._base = layout.base.poses()
        self._parts = {n: g.poses() for n, g in layout.parts.items()}
        self._owner = layout.tag_owner()

    def process(self, image: np.ndarray, stamp_s: float) -> FrameResult:
        intr = self.intrinsics.for_size(image.shape[1], image.shape[0])
        K, dist = intr.K(), intr.dist()
        dets = self.detector.detect(image)
        unknown = sorted(d.tag_id for d in dets if d.tag_id not in self._owner)
        min_px = self.cfg.min_tag_side_px
        base = solve_group(dets, self._base, self.layout.base.tag_size, K, dist, min_px)
        if base is not None and base.rms_px <= self.cfg.max_rms_px:
            T_cam_base, source = base.T_cam_group, "tags"
        elif self.T_base_cam is not None:
            T_cam_base, source = se3.invert(self.T_base_cam), "extrinsics"
        else:
            T_cam_base, source = None, ""
        parts: dict[str, PartEstimate] = {}
        if T_cam_base is not None:
            base_fit = base if source == "tags" else None
            for name, group in self._parts.items():
                gp = solve_group(dets, group, self.layout.parts[name].tag_size, K, dist, min_px)
                if gp is None or gp.rms_px > self.cfg.max_rms_px or gp.depth_m <= 0:
                    continue
                T, cov, w = _part_in_base(base_fit, T_cam_base, gp)
                parts[name] = PartEstimate(name, T, w, self.name, gp.rms_px, gp.tag_ids, cov)
        return FrameResult(self.name, stamp_s, T_cam_base, source, base, parts, dets, unknown)


def _agree(a: np.ndarray, b: np.ndarray, cfg: FusionConfig) -> bool:
    mm, deg = se3.pose_error(a, b)
    return mm * 1e-3 <= cfg.max_disagreement_m and deg <= cfg.max_disagreement_deg


def fuse(
    estimates: list[PartEstimate], cfg: FusionConfig | None = None
) -> tuple[np.ndarray | None, list[PartEstimate]]:
    """(weighted SE(3) mean of the largest agreeing set, the estimates rejected as outliers)."""
    cfg = cfg or FusionConfig()
    if not estimates:
        return None, []
    agree = [[j for j, b in enumerate(estimates) if _agree(a.T_base_part, b.T_base_part, cfg)] for a in estimates]
    best = max(agree, key=lambda s: (len(s), sum(estimates[j].weight for j in s)))
    used = [estimates[j] for j in best]
    T = se3.average_poses(np.stack([e.T_base_part for e in used]), np.array([e.weight for e in used]))
    if len(used) > 1 and all(e.cov_t is not None for e in used):
        info = [np.linalg.pinv(e.cov_t) for e in used]
        T[:3, 3] = np.linalg.solve(sum(info), sum(L @ e.T_base_part[:3, 3] for L, e in zip(info, used)))
    return T, [e for j, e in enumerate(estimates) if j not in best]


class PoseTracker:
    """Temporal gate of one part's pose: jump rejection, re-lock, hold."""

    def __init__(self, cfg: TrackingConfig | None = None) -> None:
        self.cfg = cfg or TrackingConfig()
        self.T: np.ndarray | None = None
        self.stamp_s = -np.inf
        self._pending: list[np.ndarray] = []
        self.status = "unseen"

    def _within(self, a: np.ndarray, b: np.ndarray, dt: float) -> bool:
        mm, deg = se3.pose_error(a, b)
        c = self.cfg
        return (
            mm * 1e-3 <= c.jump_margin_m + c.max_speed_m_s * dt
            and deg <= c.jump_margin_deg + c.max_angular_speed_deg_s * dt
        )

    def update(self, stamp_s: float, T: np.ndarray | None) -> np.ndarray | None:
        """The pose to publish at stamp_s given this frame's fused estimate (None = not seen)."""
        if T is not None and stamp_s + 1e-9 < self.stamp_s:
            T = None  # an older frame arriving late does not move the track
        if T is not None:
            if self.T is None or self._within(T, self.T, stamp_s - self.stamp_s):
                self.T, self.stamp_s, self._pending, self.status = T, stamp_s, [], "tracked"
                return self.T
            self._pending.append(T)
            recent = self._pending[-self.cfg.relock_frames :]
            if len(recent) == self.cfg.relock_frames and all(self._within(p, recent[-1], 0.0) for p in recent):
                self.T, self.stamp_s, self._pending, self.status = T, stamp_s, [], "relocked"
                return self.T
            self.status = "jump rejected"
        elif self.T is not None:
            self.status = "held"
        if self.T is not None and stamp_s - self.stamp_s <= self.cfg.hold_s:
            return self.T
        self.status = "lost" if self.T is not None else "unseen"
        return None


class PartPoseEstimator:
    """Several cameras -> one [n_parts, 7] array per image, in the layout's published order."""

    def __init__(
        self,
        layout: TagLayout,
        cameras: list[CameraEstimator],
        fusion: FusionConfig | None = None,
        tracking: TrackingConfig | None = None,
        sync_s: float = 0.05,
    ) -> None:
        self.layout = layout
        self.cameras = {c.name: c for c in cameras}
        self.fusion = fusion or FusionConfig()
        self.sync_s = sync_s
        self.order = layout.published()
        self.trackers = {n: PoseTracker(tracking) for n in layout.parts}
        self.fixed = {n: se3.to_pos_quat(t.matrix()) for n, t in layout.fixed.items()}
        self.latest: dict[str, FrameResult] = {}
        self.rejected: list[PartEstimate] = []  # outliers of the last fusion

    def add_image(self, camera: str, image: np.ndarray, stamp_s: float) -> np.ndarray:
        """Process one camera's image; the fused, tracked poses at its stamp [n_parts, 7] (NaN = unknown)."""
        if camera not in self.cameras:
            raise KeyError(f"unknown camera '{camera}' (known: {list(self.cameras)})")
        self.latest[camera] = self.cameras[camera].process(image, stamp_s)
        return self.poses_at(stamp_s)

    def poses_at(self, stamp_s: float) -> np.ndarray:
        frames = [f for f in self.latest.values() if abs(f.stamp_s - stamp_s) <= self.sync_s]
        out = np.full((len(self.order), 7), np.nan)
        self.rejected = []
        for name, tracker in self.trackers.items():
            T, rejected = fuse([f.parts[name] for f in frames if name in f.parts], self.fusion)
            self.rejected += rejected
            T = tracker.update(stamp_s, T)
            if T is not None and name in self.order:
                out[self.order.index(name)] = se3.to_pos_quat(T)
        for name, pose in self.fixed.items():
            if name in self.order:
                out[self.order.index(name)] = pose
        return out

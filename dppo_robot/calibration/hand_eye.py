"""Hand-eye calibration: A_i X B_i = Y for a wrist camera (eye-in-hand) or a fixed one (eye-to-hand).

eye_in_hand: A_i = T_base_gripper_i, X = T_gripper_cam (wanted), B_i = T_cam_target_i,
             Y = T_base_target (the board, fixed in the world).
eye_to_hand: A_i = T_gripper_base_i (the inverted robot pose), X = T_base_cam (wanted),
             B_i = T_cam_target_i, Y = T_gripper_target (the board, held by the hand).
Both are the same problem (the inverted formulation of the eye-to-hand case). Solution: a
closed form on relative motions (Park & Martin rotation, least-squares translation) inside a
RANSAC over triples of poses, then a joint Levenberg-Marquardt refinement of X and Y on the
inliers. Poses held out of the fit measure the error of the result (verify).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from dppo_robot.calibration import se3
from dppo_robot.calibration.errors import CalibrationError

Mount = Literal["eye_in_hand", "eye_to_hand"]
MIN_POSES = 3
ROT_SCALE_M = 0.1  # 1 rad of rotation residual weighs as much as 0.1 m of translation


def _as_ab(T_base_gripper: np.ndarray, mount: Mount) -> np.ndarray:
    if mount == "eye_in_hand":
        return np.asarray(T_base_gripper, np.float64)
    if mount == "eye_to_hand":
        return np.stack([se3.invert(T) for T in T_base_gripper])
    raise ValueError(f"mount must be eye_in_hand or eye_to_hand, got {mount!r}")


def solve_closed_form(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """X [4, 4] from A_i X B_i = const over all pose pairs (Park & Martin + least squares)."""
    alphas, betas, rows, rhs = [], [], [], []
    pairs = list(itertools.combinations(range(len(A)), 2))
    for i, j in pairs:
        Aij = se3.invert(A[j]) @ A[i]
        Bij = B[j] @ se3.invert(B[i])
        alphas.append(Rotation.from_matrix(Aij[:3, :3]).as_rotvec())
        betas.append(Rotation.from_matrix(Bij[:3, :3]).as_rotvec())
    alphas, betas = np.array(alphas), np.array(betas)
    # R_X beta = alpha: orthogonal Procrustes (Kabsch)
    H = betas.T @ alphas
    U, _, Vt = np.linalg.svd(H)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
    R_X = Vt.T @ D @ U.T
    for i, j in pairs:
        Aij = se3.invert(A[j]) @ A[i]
        Bij = B[j] @ se3.invert(B[i])
        rows.append(Aij[:3, :3] - np.eye(3))
        rhs.append(R_X @ Bij[:3, 3] - Aij[:3, 3])
    t_X, *_ = np.linalg.lstsq(np.concatenate(rows), np.concatenate(rhs), rcond=None)
    return se3.make_pose(R_X, t_X)


def constant_estimates(A: np.ndarray, X: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Y_i = A_i X B_i [N, 4, 4]; all equal for a perfect X."""
    return np.einsum("nij,jk,nkl->nil", A, X, B)


def per_pose_errors(A: np.ndarray, X: np.ndarray, B: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mm [N], deg [N]): how far each A_i X B_i is from Y."""
    errs = np.array([se3.pose_error(Yi, Y) for Yi in constant_estimates(A, X, B)])
    return errs[:, 0], errs[:, 1]


def _refine(A: np.ndarray, B: np.ndarray, X0: np.ndarray, Y0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    def unpack(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return se3.from_rvec_tvec(p[0:3], p[3:6]) @ X0, se3.from_rvec_tvec(p[6:9], p[9:12]) @ Y0

    def residuals(p: np.ndarray) -> np.ndarray:
        X, Y = unpack(p)
        Yi = constant_estimates(A, X, B)
        dt = Yi[:, :3, 3] - Y[:3, 3]
        dr = Rotation.from_matrix(np.einsum("ji,njk->nik", Y[:3, :3], Yi[:, :3, :3])).as_rotvec() * ROT_SCALE_M
        return np.concatenate([dt, dr], axis=1).ravel()

    sol = least_squares(residuals, np.zeros(12), method="lm", xtol=1e-12, ftol=1e-12)
    return unpack(sol.x)


@dataclass
class PixelViews:
    """Target points seen in each pose's image, for the reprojection refinement.

    object_points[i] [M_i, 3] in the target frame, image_points[i] [M_i, 2] px; K [3, 3], dist [n].
    """

    object_points: list[np.ndarray]
    image_points: list[np.ndarray]
    K: np.ndarray
    dist: np.ndarray

    def subset(self, idx: np.ndarray) -> PixelViews:
        return PixelViews([self.object_points[i] for i in idx], [self.image_points[i] for i in idx], self.K, self.dist)


def _refine_reprojection(
    A: np.ndarray, views: PixelViews, X0: np.ndarray, Y0: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """X, Y minimising the pixel error of the target points predicted through (A_i X)^-1 Y."""
    import cv2

    def unpack(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return se3.from_rvec_tvec(p[0:3], p[3:6]) @ X0, se3.from_rvec_tvec(p[6:9], p[9:12]) @ Y0

    def residuals(p: np.ndarray) -> np.ndarray:
        X, Y = unpack(p)
        out = []
        for Ai, obj, img in zip(A, views.object_points, views.image_points):
            rvec, tvec = se3.to_rvec_tvec(se3.invert(Ai @ X) @ Y)
            proj, _ = cv2.projectPoints(obj, rvec, tvec, views.K, views.dist)
            out.append((proj.reshape(-1, 2) - img).ravel())
        return np.concatenate(out)

    sol = least_squares(
        residuals, np.zeros(12), method="lm", x_scale=np.r_[[1e-2] * 3, [1e-3] * 3, [1e-2] * 3, [1e-3] * 3]
    )
    return unpack(sol.x)


def _fit(A: np.ndarray, B: np.ndarray, views: PixelViews | None = None) -> tuple[np.ndarray, np.ndarray]:
    X = solve_closed_form(A, B)
    Y = se3.average_poses(constant_estimates(A, X, B))
    X, Y = _refine(A, B, X, Y)
    if views is not None:
        X, Y = _refine_reprojection(A, views, X, Y)
    return X, Y


@dataclass
class HandEyeResult:
    mount: Mount
    X: np.ndarray  # eye_in_hand: T_gripper_cam; eye_to_hand: T_base_cam
    Y: np.ndarray  # eye_in_hand: T_base_target; eye_to_hand: T_gripper_target
    fit_index: np.ndarray  # indices of the poses used for fitting (inliers)
    outlier_index: np.ndarray  # poses rejected by RANSAC
    holdout_index: np.ndarray  # poses kept out of the fit
    residual_mm: np.ndarray  # per fit pose
    residual_deg: np.ndarray
    holdout_mm: np.ndarray = field(default_factory=lambda: np.zeros(0))
    holdout_deg: np.ndarray = field(default_factory=lambda: np.zeros(0))
    warnings: list[str] = field(default_factory=list)


def motion_warnings(T_base_gripper: np.ndarray, min_angle_deg: float = 30.0) -> list[str]:
    """Why a pose set is a poor one: too little rotation, or rotations all about one axis."""
    Rs = np.asarray(T_base_gripper)[:, :3, :3]
    rv = np.array([Rotation.from_matrix(Rs[0].T @ R).as_rotvec() for R in Rs[1:]])
    out = []
    if len(rv) == 0:
        return ["only one pose"]
    largest = float(np.degrees(np.max(np.linalg.norm(rv, axis=1))))
    if largest < min_angle_deg:
        out.append(f"the hand rotates at most {largest:.0f} deg between poses; aim for >= {min_angle_deg:.0f} deg")
    sv = np.linalg.svd(rv, compute_uv=False) if len(rv) >= 2 else np.zeros(3)
    if len(sv) < 3 or sv[1] < 0.15 * sv[0]:
        out.append("the rotations are nearly all about one axis; tilt the hand about two different axes")
    return out


def calibrate(
    T_base_gripper: np.ndarray,
    T_cam_target: np.ndarray,
    mount: Mount,
    holdout: float | int = 0,
    ransac_mm: float = 5.0,
    ransac_deg: float = 1.0,
    ransac_iters: int = 300,
    seed: int = 0,
    views: PixelViews | None = None,
) -> HandEyeResult:
    """Hand-eye calibration from N robot poses [N, 4, 4] and target poses in the camera [N, 4, 4].

    holdout: a fraction (< 1) or a count of poses, evenly spaced, kept out of the fit and used
    to report the error of the result. RANSAC: triples of poses, inliers within ransac_mm and
    ransac_deg of the triple's constant transform. views (the target's image points of every
    pose): the final fit minimises their reprojection error instead of the pose residuals.
    """
    T_base_gripper = np.asarray(T_base_gripper, np.float64).reshape(-1, 4, 4)
    T_cam_target = np.asarray(T_cam_target, np.float64).reshape(-1, 4, 4)
    n = len(T_base_gripper)
    if len(T_cam_target) != n:
        raise CalibrationError(f"{n} robot poses but {len(T_cam_target)} target poses")
    n_hold = round(holdout * n) if isinstance(holdout, float) and holdout < 1 else int(holdout)
    hold = np.unique(np.linspace(0, n - 1, n_hold + 2)[1:-1].round().astype(int)) if n_hold > 0 else np.zeros(0, int)
    train = np.setdiff1d(np.arange(n), hold)
    if len(train) < MIN_POSES:
        raise CalibrationError(
            f"hand-eye needs at least {MIN_POSES} poses to fit, got {len(train)} ({len(hold)} held out)"
        )
    A, B = _as_ab(T_base_gripper, mount), T_cam_target
    At, Bt = A[train], B[train]
    inl = np.ones(len(train), bool)
    if len(train) >= 6:  # RANSAC over triples
        rng = np.random.default_rng(seed)
        combos = list(itertools.combinations(range(len(train)), 3))
        picks = (
            combos if len(combos) <= ransac_iters else [combos[k] for k in rng.choice(len(combos), ransac_iters, False)]
        )
        best, best_key = None, (-1, np.inf)
        for c in picks:
            idx = list(c)
            X = solve_closed_form(At[idx], Bt[idx])
            Y = se3.average_poses(constant_estimates(At[idx], X, Bt[idx]))
            mm, deg = per_pose_errors(At, X, Bt, Y)
            ok = (mm < ransac_mm) & (deg < ransac_deg)
            key = (int(ok.sum()), float(np.sum(np.minimum(mm / ransac_mm, 1) + np.minimum(deg / ransac_deg, 1))))
            if key[0] > best_key[0] or (key[0] == best_key[0] and key[1] < best_key[1]):
                best, best_key = ok, key
        if best is not None and best.sum() >= MIN_POSES:
            inl = best
    X, Y = _fit(At[inl], Bt[inl])
    for _ in range(3):  # re-select inliers with the refined model
        mm, deg = per_pose_errors(At, X, Bt, Y)
        new = (mm < ransac_mm) & (deg < ransac_deg) if len(train) >= 6 else inl
        if new.sum() < MIN_POSES or np.array_equal(new, inl):
            break
        inl = new
        X, Y = _fit(At[inl], Bt[inl])
    if views is not None:
        X, Y = _fit(At[inl], Bt[inl], views.subset(train[inl]))
    mm, deg = per_pose_errors(At[inl], X, Bt[inl], Y)
    res = HandEyeResult(
        mount, X, Y, train[inl], train[~inl], hold, mm, deg, warnings=motion_warnings(T_base_gripper[train[inl]])
    )
    if len(hold):
        res.holdout_mm, res.holdout_deg = verify(res, T_base_gripper[hold], T_cam_target[hold])
    return res


def verify(
    result: HandEyeResult, T_base_gripper: np.ndarray, T_cam_target: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(mm [N], deg [N]): observed target pose in the camera vs the pose the calibration predicts."""
    A = _as_ab(np.asarray(T_base_gripper, np.float64).reshape(-1, 4, 4), result.mount)
    B = np.asarray(T_cam_target, np.float64).reshape(-1, 4, 4)
    pred = [se3.invert(Ai @ result.X) @ result.Y for Ai in A]  # T_cam_target = (A X)^-1 Y
    errs = np.array([se3.pose_error(p, b) for p, b in zip(pred, B)])
    return errs[:, 0], errs[:, 1]


def predicted_target_in_camera(result: HandEyeResult, T_base_gripper: np.ndarray) -> np.ndarray:
    """T_cam_target [4, 4] that the calibration predicts at a robot pose."""
    A = _as_ab(np.asarray(T_base_gripper, np.float64).reshape(1, 4, 4), result.mount)[0]
    return se3.invert(A @ result.X) @ result.Y

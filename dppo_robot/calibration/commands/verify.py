"""`dppo-robot calibrate verify`: check a calibration file, and measure it on fresh data.

Always: load and validate the file (shapes, orthonormal rotations, schema version) and print
each camera's intrinsics, extrinsics and stored residuals. --session: the error of the stored
hand-eye result on a session it was not fitted to (board pose predicted from the robot pose vs
the board seen: mm, deg, and the predicted board's reprojection error in px). --image with
--layout: the tags seen, the base-tag frame and every part's pose. Exit status 1 when an error
is above --max-mm / --max-deg / --max-px.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from dppo_robot.calibration import hand_eye, se3
from dppo_robot.calibration.commands.inputs import read_image
from dppo_robot.calibration.errors import CalibrationError
from dppo_robot.calibration.layout import load_layout
from dppo_robot.calibration.part_poses import CameraEstimator
from dppo_robot.calibration.schema import CalibrationFile, load_calibration
from dppo_robot.calibration.session import load_session, observe_session


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calibration", required=True, help="calibration YAML")
    parser.add_argument("--session", help="a hand-eye session not used for fitting (images + robot poses)")
    parser.add_argument("--image", help="an image of the tags (with --layout and --serial)")
    parser.add_argument("--layout", help="tag layout YAML")
    parser.add_argument("--serial", default="", help="camera serial of --image")
    parser.add_argument("--max-mm", type=float, default=2.0, help="fail above this median position error")
    parser.add_argument("--max-deg", type=float, default=0.5, help="fail above this median rotation error")
    parser.add_argument("--max-px", type=float, default=2.0, help="fail above this median reprojection error")


def summarize(calib: CalibrationFile) -> None:
    for serial, cam in calib.cameras.items():
        print(f"camera {serial} ({cam.name or 'unnamed'})")
        if cam.intrinsics is not None:
            i = cam.intrinsics
            K = i.K()
            rms = "" if i.rms_px is None else f", RMS {i.rms_px:.3f} px"
            print(f"  intrinsics {i.width}x{i.height} fx {K[0, 0]:.1f} fy {K[1, 1]:.1f} ({i.source or '?'}{rms})")
        if cam.extrinsics is not None:
            e = cam.extrinsics
            t = np.round(e.camera_in_parent.translation, 4).tolist()
            print(f"  extrinsics {e.mount}: camera in '{e.parent_frame}' at {t} m")
            if e.report is not None:
                r = e.report
                held = (
                    "" if r.holdout_mm is None else f"; held-out median {r.holdout_mm:.2f} mm / {r.holdout_deg:.3f} deg"
                )
                print(
                    f"    fit {r.n_inliers}/{r.n_poses} poses, {r.residual_mm:.2f} mm / {r.residual_deg:.3f} deg{held}"
                )


def verify_session(args: argparse.Namespace, calib: CalibrationFile) -> bool:
    session, root = load_session(args.session)
    cam = calib.camera(session.serial, args.calibration)
    if cam.extrinsics is None or cam.intrinsics is None:
        raise CalibrationError(f"camera {session.serial} needs intrinsics and extrinsics to be verified")
    if cam.extrinsics.mount != session.mount:
        raise CalibrationError(f"the session is {session.mount} but the calibration is {cam.extrinsics.mount}")
    K, dist = cam.intrinsics.K(), cam.intrinsics.dist()
    obs = observe_session(session, root, K, dist)
    use = obs.usable()
    if len(use) == 0:
        raise CalibrationError("no image of the session shows the board")
    X = cam.extrinsics.camera_in_parent.matrix()
    A = obs.T_base_hand[use]
    B = np.stack([obs.T_cam_board[i] for i in use])
    AB = A if session.mount == "eye_in_hand" else np.stack([se3.invert(a) for a in A])
    Y = se3.average_poses(hand_eye.constant_estimates(AB, X, B))  # the board's fixed pose, from this session
    res = hand_eye.HandEyeResult(session.mount, X, Y, use, use[:0], use[:0], np.zeros(0), np.zeros(0))
    mm, deg = hand_eye.verify(res, A, B)
    px = []
    for k, i in enumerate(use):
        rvec, tvec = se3.to_rvec_tvec(hand_eye.predicted_target_in_camera(res, A[k]))
        proj, _ = cv2.projectPoints(obs.object_points[i], rvec, tvec, K, dist)
        px.append(float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - obs.image_points[i]) ** 2, axis=1)))))
        print(f"  {obs.names[i]:<32} {mm[k]:6.2f} mm {deg[k]:6.3f} deg {px[k]:6.2f} px")
    med = (float(np.median(mm)), float(np.median(deg)), float(np.median(px)))
    print(f"verify {session.serial}: {len(use)} poses, median {med[0]:.2f} mm / {med[1]:.3f} deg / {med[2]:.2f} px")
    ok = med[0] <= args.max_mm and med[1] <= args.max_deg and med[2] <= args.max_px
    print("PASS" if ok else f"FAIL (limits {args.max_mm} mm, {args.max_deg} deg, {args.max_px} px)")
    return ok


def verify_image(args: argparse.Namespace, calib: CalibrationFile) -> bool:
    if not args.layout or not args.serial:
        raise CalibrationError("--image needs --layout and --serial")
    layout = load_layout(args.layout)
    est = CameraEstimator(args.serial, layout, calib.intrinsics(args.serial, args.calibration))
    fr = est.process(read_image(args.image), 0.0)
    print(
        f"tags seen: {sorted(d.tag_id for d in fr.detections)}"
        + (f" (not in the layout: {fr.unknown_ids})" if fr.unknown_ids else "")
    )
    if fr.base is None:
        print("no base tag seen: no base-tag frame")
        return False
    print(f"base-tag frame from tags {fr.base.tag_ids}: {fr.base.rms_px:.3f} px, camera {fr.base.depth_m:.3f} m away")
    for name in layout.parts:
        e = fr.parts.get(name)
        if e is None:
            print(f"  {name:<20} not seen")
            continue
        p = se3.to_pos_quat(e.T_base_part)
        print(
            f"  {name:<20} pos {np.round(p[:3], 4).tolist()} quat {np.round(p[3:], 4).tolist()} "
            f"tags {e.tag_ids} {e.rms_px:.3f} px"
        )
    return fr.base.rms_px <= args.max_px


def run(args: argparse.Namespace) -> int:
    calib = load_calibration(args.calibration)
    print(f"{args.calibration}: valid (schema {calib.schema_version}, {len(calib.cameras)} cameras)")
    summarize(calib)
    ok = True
    if args.session:
        ok &= verify_session(args, calib)
    if args.image:
        ok &= verify_image(args, calib)
    return 0 if ok else 1

"""`dppo-robot calibrate hand-eye`: camera extrinsics from a capture session (board images + robot poses).

The session YAML (dppo_robot.calibration.session) lists each image with the robot's hand pose
when it was taken. The board is found in every image, RANSAC drops inconsistent poses, a
fraction of the poses is held out and the error on them is reported; the result goes into the
camera's entry of the calibration file. Run with --guide for the capture procedure.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.spatial.transform import Rotation

from dppo_robot.calibration import hand_eye
from dppo_robot.calibration.errors import CalibrationError
from dppo_robot.calibration.schema import Extrinsics, HandEyeReport, Transform, load_calibration, save_calibration
from dppo_robot.calibration.session import load_session, observe_session

GUIDE = """Hand-eye capture (15-25 poses; the more rotation between poses, the better):
  eye_in_hand: fix the board on the table; move the hand so the wrist camera sees the whole board
    from 0.3-0.6 m, tilting the hand 20-40 deg about two different axes between poses.
  eye_to_hand: clamp the board to the hand (it must not slip); present it to the fixed camera at
    different positions and tilts (20-40 deg) across the workspace.
  At each pose: wait until the arm is still, save the image and the hand pose (franka o_t_ee,
  or /franka_robot_state_broadcaster/current_pose) as a sample of the session YAML.
  Then: dppo-robot calibrate hand-eye --session session.yaml --calibration calibration.yaml
  and check the held-out error; `dppo-robot calibrate verify` on a fresh session confirms it."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--session", help="session YAML (images + robot poses)")
    parser.add_argument(
        "--calibration", help="calibration YAML with the camera's intrinsics; extrinsics are written to it"
    )
    parser.add_argument(
        "--holdout", type=float, default=0.2, help="fraction (< 1) or count of poses held out (default 0.2)"
    )
    parser.add_argument("--ransac-mm", type=float, default=5.0, help="RANSAC inlier threshold, mm")
    parser.add_argument("--ransac-deg", type=float, default=1.0, help="RANSAC inlier threshold, deg")
    parser.add_argument("--dry-run", action="store_true", help="report only; do not write the calibration file")
    parser.add_argument("--guide", action="store_true", help="print the capture procedure and exit")


def run(args: argparse.Namespace) -> int:
    if args.guide:
        print(GUIDE)
        return 0
    if not args.session or not args.calibration:
        raise CalibrationError("--session and --calibration are required (or --guide)")
    session, root = load_session(args.session)
    calib = load_calibration(args.calibration)
    intr = calib.intrinsics(session.serial, args.calibration)
    obs = observe_session(session, root, intr.K(), intr.dist())
    print(f"{len(session.samples)} samples ({session.mount}, camera {session.serial})")
    for name, T, rms in zip(obs.names, obs.T_cam_board, obs.board_rms_px):
        print(f"  {name:<32} " + ("no board" if T is None else f"board at {T[2, 3]:.3f} m, {rms:.3f} px"))
    use = obs.usable()
    if len(use) < len(session.samples):
        print(f"  {len(session.samples) - len(use)} samples without a board are skipped")
    if len(use) < 6:
        print(GUIDE)
    holdout = args.holdout if args.holdout < 1 else int(args.holdout)
    views = hand_eye.PixelViews(
        [obs.object_points[i] for i in use], [obs.image_points[i] for i in use], intr.K(), intr.dist()
    )
    res = hand_eye.calibrate(
        obs.T_base_hand[use],
        np.stack([obs.T_cam_board[i] for i in use]),
        session.mount,
        holdout=holdout,
        ransac_mm=args.ransac_mm,
        ransac_deg=args.ransac_deg,
        views=views,
    )
    for i in res.outlier_index:
        print(f"  outlier (RANSAC): {obs.names[use[i]]}")
    rms_mm = float(np.sqrt(np.mean(res.residual_mm**2)))
    rms_deg = float(np.sqrt(np.mean(res.residual_deg**2)))
    print(f"fit: {len(res.fit_index)} poses, residual RMS {rms_mm:.2f} mm / {rms_deg:.3f} deg")
    report = HandEyeReport(len(use), len(res.fit_index), rms_mm, rms_deg, len(res.holdout_index))
    if len(res.holdout_index):
        report.holdout_mm, report.holdout_deg = float(np.median(res.holdout_mm)), float(np.median(res.holdout_deg))
        print(
            f"held out: {len(res.holdout_index)} poses, "
            f"median {report.holdout_mm:.2f} mm / {report.holdout_deg:.3f} deg, "
            f"max {res.holdout_mm.max():.2f} mm / {res.holdout_deg.max():.3f} deg"
        )
    for w in res.warnings:
        print(f"warning: {w}")
    pos = res.X[:3, 3]
    rpy = np.degrees(Rotation.from_matrix(res.X[:3, :3]).as_euler("xyz"))
    print(
        f"T_{session.parent_frame}_camera: translation {np.round(pos, 4).tolist()} m, "
        f"rpy {np.round(rpy, 2).tolist()} deg"
    )
    if args.dry_run:
        return 0
    cam = calib.cameras[session.serial]
    cam.extrinsics = Extrinsics(session.mount, session.parent_frame, Transform.from_matrix(res.X), report)
    save_calibration(calib, args.calibration)
    print(f"wrote extrinsics of camera {session.serial} to {args.calibration}")
    return 0

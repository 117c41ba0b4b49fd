"""`dppo-robot calibrate intrinsics`: intrinsics from ChArUco images, or a RealSense's factory values.

Writes (or updates) the camera's entry in the calibration file and prints the reprojection
error per view; views far worse than the rest are dropped and named. --board-image writes a
printable board and exits.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from dppo_robot.calibration.charuco import BoardDetector
from dppo_robot.calibration.commands.inputs import add_board_arguments, board_from_args, expand_images, read_image
from dppo_robot.calibration.errors import CalibrationError
from dppo_robot.calibration.intrinsics import calibrate_images, connected_realsense, realsense_intrinsics
from dppo_robot.calibration.schema import CameraCalibration, load_or_new, save_calibration


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calibration", required=True, help="calibration YAML to create or update")
    parser.add_argument("--serial", default="", help="camera serial (the key in the calibration file)")
    parser.add_argument("--name", default="", help="camera name stored with it (front, wrist, ...)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", nargs="+", help="board images: files, folders or glob patterns")
    src.add_argument("--realsense", action="store_true", help="read the connected RealSense's factory intrinsics")
    src.add_argument("--board-image", metavar="PNG", help="write a printable board image (300 dpi) and exit")
    parser.add_argument("--width", type=int, default=1280, help="--realsense stream width")
    parser.add_argument("--height", type=int, default=720, help="--realsense stream height")
    parser.add_argument("--fps", type=int, default=30, help="--realsense stream rate")
    parser.add_argument("--model", choices=["plumb_bob", "rational_polynomial"], default="plumb_bob")
    parser.add_argument("--max-rms", type=float, default=1.0, help="refuse a result above this RMS (px)")
    add_board_arguments(parser)


def run(args: argparse.Namespace) -> int:
    spec = board_from_args(args)
    if args.board_image:
        img, _ = spec.image(px_per_m=300 / 0.0254, margin_px=round(spec.square_m * 300 / 0.0254 / 2))
        cv2.imwrite(args.board_image, img)
        print(f"wrote {args.board_image}: {spec.squares_x}x{spec.squares_y} squares of {spec.square_m * 1e3:g} mm "
              f"at 300 dpi; print at 100 % and measure a square")  # fmt: skip
        return 0
    calib = load_or_new(args.calibration)
    if args.realsense:
        serial, dev = connected_realsense(args.serial)
        intr = realsense_intrinsics(dev, args.width, args.height, args.fps)
        print(f"RealSense {serial}: factory intrinsics {intr.width}x{intr.height} ({intr.source})")
    else:
        if not args.serial:
            raise CalibrationError("--serial is required with --images (it keys the calibration file)")
        serial = args.serial
        files = expand_images(args.images)
        res = calibrate_images([read_image(f) for f in files], BoardDetector(spec), model=args.model)
        print(f"{len(files)} images, {len(res.used)} used")
        for i, f in enumerate(files):
            e = res.per_view_rms_px[i]
            note = res.rejected.get(i, "")
            print(f"  {f.name:<32} {'-' if np.isnan(e) else f'{e:.3f} px':>10}  {note}")
        intr = res.intrinsics
        print(f"reprojection RMS {res.rms_px:.3f} px")
        if res.rms_px > args.max_rms:
            raise CalibrationError(f"reprojection RMS {res.rms_px:.3f} px is above --max-rms {args.max_rms}")
    K = intr.K()
    print(
        f"fx {K[0, 0]:.2f} fy {K[1, 1]:.2f} cx {K[0, 2]:.2f} cy {K[1, 2]:.2f} dist {np.round(intr.dist(), 5).tolist()}"
    )
    cam = calib.cameras.get(serial) or CameraCalibration()
    cam.name = args.name or cam.name
    cam.intrinsics = intr
    calib.cameras[serial] = cam
    save_calibration(calib, args.calibration)
    print(f"wrote intrinsics of camera {serial} to {args.calibration}")
    return 0

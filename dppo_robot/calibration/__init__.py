"""Calibration: camera intrinsics, hand-eye extrinsics, AprilTag part poses in the base-tag frame.

ROS-free. Modules: se3 (pose maths, rotation averaging), schema (the calibration file), layout
(tag layouts), charuco (boards), intrinsics, hand_eye, apriltags (detection + PnP), part_poses
(fusion, tracking), part_pose_config, render (synthetic pinhole images), mujoco_tags (tags in
MuJoCo scenes), session (hand-eye capture sessions), commands (`dppo-robot calibrate ...`).
Submodules import OpenCV; this package file imports nothing.
"""

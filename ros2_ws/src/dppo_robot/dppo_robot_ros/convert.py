"""Message <-> core conversion, written against message attributes.

Readers (`*_sample`, `trajectory_to_chunk`) take any object with the message's attributes, so
they are tested with plain objects and with real messages. Writers fill a message instance
passed in (real or plain), creating nested messages through the given factories.

Shapes: images rgb8/bgr8/mono8 [H, W, C] in the message -> uint8 [3, H, W] in the core.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dppo_robot.deploy.chunks import TimedChunk
from dppo_robot.deploy.obs_history import Sample


def stamp_to_s(stamp: Any) -> float:
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def set_stamp(stamp: Any, t_s: float) -> None:
    ns = round(t_s * 1e9)
    stamp.sec, stamp.nanosec = int(ns // 1_000_000_000), int(ns % 1_000_000_000)


def pose_sample(msg: Any) -> Sample:
    """geometry_msgs/PoseStamped -> Sample(position [3], quat_xyzw [4])."""
    p, q = msg.pose.position, msg.pose.orientation
    return Sample(
        stamp_to_s(msg.header.stamp),
        {"position": np.array([p.x, p.y, p.z]), "quat_xyzw": np.array([q.x, q.y, q.z, q.w])},
    )


def joint_state_sample(msg: Any) -> Sample:
    """sensor_msgs/JointState -> Sample(position, velocity; names = joint names)."""
    vals = {"position": np.asarray(msg.position, np.float64)}
    if len(msg.velocity) == len(msg.position):
        vals["velocity"] = np.asarray(msg.velocity, np.float64)
    return Sample(stamp_to_s(msg.header.stamp), vals, tuple(msg.name))


def pose_array_sample(msg: Any) -> Sample:
    """geometry_msgs/PoseArray -> Sample(position [N, 3], quat_xyzw [N, 4])."""
    pos = np.array([[p.position.x, p.position.y, p.position.z] for p in msg.poses]).reshape(-1, 3)
    quat = np.array([[p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w] for p in msg.poses]).reshape(
        -1, 4
    )
    return Sample(stamp_to_s(msg.header.stamp), {"position": pos, "quat_xyzw": quat})


def image_array(msg: Any) -> np.ndarray:
    """sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8) -> uint8 [3, H, W] RGB."""
    enc = msg.encoding.lower()
    ch = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}.get(enc)
    if ch is None:
        raise ValueError(f"unsupported image encoding {msg.encoding!r}")
    buf = np.frombuffer(bytes(msg.data), np.uint8)
    img = buf.reshape(msg.height, msg.step)[:, : msg.width * ch].reshape(msg.height, msg.width, ch)
    if enc.startswith("bgr"):
        img = img[:, :, [2, 1, 0]]
    elif ch == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3].transpose(2, 0, 1))


def image_sample(msg: Any) -> Sample:
    return Sample(stamp_to_s(msg.header.stamp), {"image": image_array(msg)})


def trajectory_to_chunk(msg: Any) -> TimedChunk:
    """trajectory_msgs/JointTrajectory (header stamp = obs time, points at their time_from_start) -> chunk.

    Point i's execution time is stamp + time_from_start; dt is the spacing of the points and
    offset the first point's time in dt (both recovered from the message).
    """
    t0 = stamp_to_s(msg.header.stamp)
    n = len(msg.points)
    if n == 0:
        return TimedChunk(t0, 1.0, np.zeros((0, len(msg.joint_names)), np.float32), 1, list(msg.joint_names))
    tfs = np.array([stamp_to_s(p.time_from_start) for p in msg.points])
    dt = float(tfs[1] - tfs[0]) if n > 1 else float(tfs[0])
    offset = round(tfs[0] / dt) if dt > 0 else 1
    actions = np.array([list(p.positions) for p in msg.points], np.float32)
    return TimedChunk(t0, dt, actions, offset, list(msg.joint_names))


def fill_trajectory(msg: Any, chunk: TimedChunk, make_point: Callable[[], Any], frame_id: str = "") -> Any:
    """Fill a JointTrajectory: joint_names = action element names, positions = actions."""
    set_stamp(msg.header.stamp, chunk.stamp_s)
    msg.header.frame_id = frame_id
    msg.joint_names = list(chunk.names)
    pts = []
    for i, a in enumerate(chunk.actions):
        pt = make_point()
        pt.positions = [float(x) for x in a]
        set_stamp(pt.time_from_start, (i + chunk.offset) * chunk.dt_s)
        pts.append(pt)
    msg.points = pts
    return msg


def fill_pose(msg: Any, t_s: float, position: np.ndarray, quat: np.ndarray, frame_id: str = "base") -> Any:
    set_stamp(msg.header.stamp, t_s)
    msg.header.frame_id = frame_id
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = (float(v) for v in position[:3])
    q.x, q.y, q.z, q.w = (float(v) for v in quat[:4])
    return msg


def fill_joint_state(msg: Any, t_s: float, names: list[str], position: np.ndarray) -> Any:
    set_stamp(msg.header.stamp, t_s)
    msg.name = list(names)
    msg.position = [float(v) for v in np.asarray(position).reshape(-1)]
    return msg


def fill_pose_array(msg: Any, t_s: float, poses: list[np.ndarray], make_pose: Callable[[], Any], frame: str) -> Any:
    """poses: [7] (position + quat xyzw) or [3] (position, identity orientation) each."""
    set_stamp(msg.header.stamp, t_s)
    msg.header.frame_id = frame
    out = []
    for v in poses:
        p = make_pose()
        p.position.x, p.position.y, p.position.z = (float(x) for x in v[:3])
        q = v[3:7] if len(v) >= 7 else (0.0, 0.0, 0.0, 1.0)
        p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = (float(x) for x in q)
        out.append(p)
    msg.poses = out
    return msg


def fill_image(msg: Any, t_s: float, img_chw: np.ndarray, frame_id: str = "camera_color_optical_frame") -> Any:
    """uint8 [3, H, W] RGB -> sensor_msgs/Image rgb8."""
    hwc = np.ascontiguousarray(np.asarray(img_chw, np.uint8).transpose(1, 2, 0))
    set_stamp(msg.header.stamp, t_s)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(hwc.shape[0]), int(hwc.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = int(hwc.shape[1] * 3)
    msg.data = hwc.tobytes()
    return msg


def task_state_names(slices: dict[str, np.ndarray]) -> list[str]:
    return [f"{k}/{i}" for k, v in slices.items() for i in range(np.asarray(v).size)]

"""Message <-> core conversion, written against message attributes.

Readers (`*_sample`, `multidof_to_pose_chunk`, `joint_trajectory_positions`) take any object with
the message's attributes, so they are tested with plain objects and with real messages. Writers fill a
message instance passed in (real or plain), creating nested messages through the given factories.

Shapes: images rgb8/bgr8/mono8 [H, W, C] in the message -> uint8 [3, H, W] in the core.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dppo_robot.deploy.action_map import PoseChunk
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


def _times(points: Any) -> tuple[float, int]:
    """dt (spacing of the points' time_from_start) and offset (first point's time in dt)."""
    tfs = np.array([stamp_to_s(p.time_from_start) for p in points])
    dt = float(tfs[1] - tfs[0]) if len(tfs) > 1 else float(tfs[0])
    return dt, (round(tfs[0] / dt) if dt > 0 else 1)


def multidof_to_pose_chunk(msg: Any) -> tuple[float, float, int, PoseChunk]:
    """trajectory_msgs/MultiDOFJointTrajectory (one end-effector "joint", header stamp = obs time,
    point i at its time_from_start) -> (stamp s, dt s, offset, PoseChunk without gripper)."""
    t0 = stamp_to_s(msg.header.stamp)
    if not msg.points:
        return t0, 1.0, 1, PoseChunk(np.zeros((0, 3)), np.zeros((0, 4)))
    dt, offset = _times(msg.points)
    tr = [p.transforms[0] for p in msg.points]
    pos = np.array([[t.translation.x, t.translation.y, t.translation.z] for t in tr])
    quat = np.array([[t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w] for t in tr])
    return t0, dt, offset, PoseChunk(pos, quat)


def fill_multidof(
    msg: Any,
    stamp_s: float,
    dt_s: float,
    offset: int,
    chunk: PoseChunk,
    joint: str,
    frame_id: str,
    make_point: Callable[[], Any],
    make_transform: Callable[[], Any],
) -> Any:
    """Fill a MultiDOFJointTrajectory: joint_names [joint], one Transform per point (absolute
    target in frame_id), time_from_start = (i + offset) * dt."""
    set_stamp(msg.header.stamp, stamp_s)
    msg.header.frame_id = frame_id
    msg.joint_names = [joint]
    pts = []
    for i, (p, q) in enumerate(zip(chunk.positions, chunk.quats)):
        tf = make_transform()
        tf.translation.x, tf.translation.y, tf.translation.z = (float(v) for v in p)
        tf.rotation.x, tf.rotation.y, tf.rotation.z, tf.rotation.w = (float(v) for v in q)
        pt = make_point()
        pt.transforms = [tf]
        set_stamp(pt.time_from_start, (i + offset) * dt_s)
        pts.append(pt)
    msg.points = pts
    return msg


def fill_joint_trajectory(
    msg: Any, stamp_s: float, names: list[str], positions: np.ndarray, times_s: list[float], make_point
) -> Any:
    """Fill a JointTrajectory: positions [N, J] of `names` reached at stamp + times_s[i]."""
    set_stamp(msg.header.stamp, stamp_s)
    msg.joint_names = list(names)
    pts = []
    for row, t in zip(np.asarray(positions, np.float64).reshape(len(times_s), -1), times_s):
        pt = make_point()
        pt.positions = [float(v) for v in row]
        set_stamp(pt.time_from_start, t)
        pts.append(pt)
    msg.points = pts
    return msg


def joint_trajectory_positions(msg: Any, names: list[str]) -> tuple[float, list[float], np.ndarray]:
    """JointTrajectory -> (stamp s, times_from_start s, positions [N, len(names)] in `names` order);
    a joint missing from the message raises ValueError."""
    idx = {n: i for i, n in enumerate(msg.joint_names)}
    missing = [n for n in names if n not in idx]
    if missing:
        raise ValueError(f"joint trajectory lacks joints {missing} (has {list(msg.joint_names)})")
    cols = [idx[n] for n in names]
    pos = np.array([[p.positions[c] for c in cols] for p in msg.points], np.float64).reshape(-1, len(names))
    return stamp_to_s(msg.header.stamp), [stamp_to_s(p.time_from_start) for p in msg.points], pos


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

"""ROS 2 side of a hardware trial session: lifecycle activation of the policy node and per-trial
MCAP recording of configured topics. Imports rclpy; the ROS-free session imports this lazily.

Recording: one rclpy subscription per topic with raw=True (the CDR bytes as published), written
to one MCAP file per trial with a ros2msg schema (the .msg text with its dependencies, as
rosbag2 writes it) and cdr message encoding, so `ros2 bag` and MCAP tools read the files. Each
trial's file is finished and fsynced before the trial's record is written.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dppo_robot.sim2real.phases import PoseSample
from dppo_robot.sim2real.records import TrialError

BUILTINS = {
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32",
    "int64", "uint64", "string", "wstring",
}  # fmt: skip
LIFECYCLE_ACTIVATE = 3  # lifecycle_msgs/msg/Transition TRANSITION_ACTIVATE
LIFECYCLE_DEACTIVATE = 4
LIFECYCLE_CONFIGURE = 1


def msg_class(type_name: str) -> Any:
    """'geometry_msgs/msg/PoseArray' (or 'geometry_msgs/PoseArray') -> the message class."""
    parts = type_name.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or parts[1] != "msg":
        raise TrialError(f"message type {type_name!r} must be 'package/msg/Type'")
    try:
        return getattr(importlib.import_module(f"{parts[0]}.msg"), parts[2])
    except (ImportError, AttributeError):
        raise TrialError(f"message type {type_name!r} is not installed (no {parts[0]}.msg.{parts[2]})") from None


def _share_dirs() -> list[Path]:
    dirs = [Path(p) / "share" for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    dirs.append(Path(sys.prefix) / "share")
    return dirs


def _msg_file(pkg: str, name: str) -> Path:
    for d in _share_dirs():
        p = d / pkg / "msg" / f"{name}.msg"
        if p.is_file():
            return p
    raise TrialError(
        f"{pkg}/msg/{name}.msg not found under {[str(d) for d in _share_dirs()]} (needed for MCAP schemas)"
    )


def _field_type(base: str, pkg: str) -> tuple[str, str] | None:
    """A field's message type as (pkg, Type), or None for a builtin."""
    base = re.sub(r"\[.*\]$", "", base)
    base = re.sub(r"<=\d+$", "", base)
    if base in BUILTINS:
        return None
    if base == "Header":
        return "std_msgs", "Header"
    parts = base.split("/")
    if len(parts) == 1:
        return pkg, parts[0]
    return parts[0], parts[-1]


def ros2msg_schema(type_name: str) -> str:
    """The ros2msg schema text of a type: its .msg, then each dependency under 'MSG: pkg/Type'."""
    pkg, _, name = _canonical(type_name).split("/")
    main = _msg_file(pkg, name).read_text()
    seen: list[tuple[str, str]] = []

    def deps(text: str, p: str) -> None:
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            tokens = line.split()
            if len(tokens) < 2 or "=" in tokens[1]:
                continue  # a constant
            t = _field_type(tokens[0], p)
            if t is not None and t not in seen:
                seen.append(t)
                deps(_msg_file(*t).read_text(), t[0])

    deps(main, pkg)
    out = main.rstrip("\n") + "\n"
    for p, n in seen:
        out += "=" * 80 + f"\nMSG: {p}/{n}\n" + _msg_file(p, n).read_text().rstrip("\n") + "\n"
    return out


@dataclass
class TopicSpec:
    """A topic to record and its type ('package/msg/Type')."""

    topic: str
    type: str


@dataclass
class RecordingSummary:
    path: str
    messages: dict[str, int] = field(default_factory=dict)
    part_poses: list[PoseSample] = field(default_factory=list)


class RosGraph:
    """One rclpy context + node spinning in a thread, shared by the activator and the recorder."""

    def __init__(self, domain_id: int | None = None, name: str = "dppo_trials") -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        self.context = Context()
        if domain_id is None:
            domain_id = int(os.environ.get("ROS_DOMAIN_ID", "0"))
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set() and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.executor.shutdown(timeout_sec=1)
        self.node.destroy_node()
        self.context.try_shutdown()


class LifecycleActivator:
    """Activates / deactivates the policy node through its lifecycle change_state service."""

    def __init__(self, graph: RosGraph, node_name: str, timeout_s: float = 5.0) -> None:
        from lifecycle_msgs.srv import ChangeState, GetState

        self.graph = graph
        self.node_name = "/" + node_name.strip("/")
        self.timeout_s = timeout_s
        self._change = graph.node.create_client(ChangeState, f"{self.node_name}/change_state")
        self._get = graph.node.create_client(GetState, f"{self.node_name}/get_state")

    def _call(self, client: Any, request: Any) -> Any:
        if not client.wait_for_service(timeout_sec=self.timeout_s):
            raise TrialError(
                f"lifecycle service {client.srv_name} not available after {self.timeout_s:g} s: is the policy node "
                f"'{self.node_name}' running on this ROS domain? (use --dry-run to run without it)"
            )
        fut = client.call_async(request)
        deadline = time.monotonic() + self.timeout_s
        while not fut.done():
            if time.monotonic() > deadline:
                raise TrialError(f"lifecycle service {client.srv_name} did not answer within {self.timeout_s:g} s")
            time.sleep(0.01)
        return fut.result()

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState

        return str(self._call(self._get, GetState.Request()).current_state.label)

    def _transition(self, transition_id: int) -> None:
        from lifecycle_msgs.srv import ChangeState

        req = ChangeState.Request()
        req.transition.id = transition_id
        if not self._call(self._change, req).success:
            raise TrialError(f"{self.node_name}: lifecycle transition {transition_id} refused (state {self.state()})")

    def activate(self) -> None:
        st = self.state()
        if st == "active":
            return
        if st == "unconfigured":
            self._transition(LIFECYCLE_CONFIGURE)
        self._transition(LIFECYCLE_ACTIVATE)

    def deactivate(self) -> None:
        if self.state() == "active":
            self._transition(LIFECYCLE_DEACTIVATE)


class McapRecorder:
    """Records the configured topics of each trial to its own MCAP file (ros2msg + cdr)."""

    def __init__(self, graph: RosGraph, topics: list[TopicSpec], part_pose_topic: str = "") -> None:
        from rclpy.qos import qos_profile_sensor_data

        self.graph = graph
        self.topics = topics
        self.part_pose_topic = part_pose_topic
        self._lock = threading.Lock()
        self._writer: Any = None
        self._file: Any = None
        self._summary: RecordingSummary | None = None
        self._channels: dict[str, int] = {}
        self._schemas = {t.type: ros2msg_schema(_canonical(t.type)) for t in topics}
        self._pose_cls = None
        for t in topics:
            cls = msg_class(t.type)
            if t.topic == part_pose_topic:
                self._pose_cls = cls
            # sensor-data QoS (best effort) receives from reliable and best-effort publishers alike
            graph.node.create_subscription(
                cls, t.topic, lambda raw, t=t: self._on_msg(t, raw), qos_profile_sensor_data, raw=True
            )
        if part_pose_topic and self._pose_cls is None:
            raise TrialError(f"part_pose_topic '{part_pose_topic}' is not one of the recorded topics")

    def start(self, path: Path) -> None:
        from mcap.writer import Writer

        path.parent.mkdir(parents=True, exist_ok=True)
        f = path.open("wb")
        w = Writer(f)
        w.start(profile="ros2", library="dppo_robot")
        channels = {}
        schema_ids: dict[str, int] = {}
        for t in self.topics:
            name = _canonical(t.type)
            if name not in schema_ids:
                schema_ids[name] = w.register_schema(name, "ros2msg", self._schemas[t.type].encode())
            channels[t.topic] = w.register_channel(t.topic, "cdr", schema_ids[name])
        with self._lock:
            self._file, self._writer, self._channels = f, w, channels
            self._summary = RecordingSummary(str(path), {t.topic: 0 for t in self.topics})

    def _on_msg(self, t: TopicSpec, raw: bytes) -> None:
        now = time.time_ns()
        with self._lock:
            if self._writer is None or self._summary is None:
                return
            self._writer.add_message(self._channels[t.topic], now, bytes(raw), now, self._summary.messages[t.topic])
            self._summary.messages[t.topic] += 1
            if t.topic == self.part_pose_topic:
                self._summary.part_poses.append((now * 1e-9, _pose_array(raw, self._pose_cls)))

    def stop(self) -> RecordingSummary:
        with self._lock:
            w, f, s = self._writer, self._file, self._summary
            self._writer = self._file = self._summary = None
        if w is None or s is None:
            raise RuntimeError("McapRecorder.stop() without start()")
        w.finish()
        f.flush()
        os.fsync(f.fileno())
        f.close()
        return s


def _canonical(type_name: str) -> str:
    parts = type_name.split("/")
    return f"{parts[0]}/msg/{parts[-1]}"


def _pose_array(raw: bytes, cls: Any) -> Any:
    """Part poses [K, 7] (xyz, quat xyzw) from a serialized geometry_msgs/PoseArray."""
    import numpy as np
    from rclpy.serialization import deserialize_message

    msg = deserialize_message(raw, cls)
    return np.array(
        [[p.position.x, p.position.y, p.position.z, p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w]
         for p in msg.poses],
        np.float64,
    ).reshape(-1, 7)  # fmt: skip

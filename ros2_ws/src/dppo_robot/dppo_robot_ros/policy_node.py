"""The policy node (lifecycle): obs topics -> PolicyCore.tick -> timestamped action chunks.

configure: load the config, load and verify the bundle (PolicyRuntime, warm-up), check it
against the topic mapping (a mismatch fails configure naming both), create interfaces.
activate: start the control timer (ticks on the control grid). deactivate: stop it and tell
the bridge to hold (empty chunk + hold tick). cleanup: release the runtime and interfaces.

Topics: chunk trajectory_msgs/MultiDOFJointTrajectory (header.stamp = obs time, frame_id =
bridge.frame_id, joint_names [robot.ee_joint], point i = the absolute end-effector target of
action i in env units at time_from_start = (i + offset) / control_hz; delta actions are anchored
at the measured pose at the obs time, see action_map.chunk_targets); gripper chunk
trajectory_msgs/JointTrajectory of robot.finger_joint (m, width / 2), same stamp and times,
published before the chunk; tick std_msgs/Header (stamp = grid time, frame_id "chunk", "ok" or
"hold: <reason>"); /diagnostics at 1 Hz and at once on a fault.
"""

from __future__ import annotations

import re
import time
from collections import Counter, deque

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseArray, PoseStamped, Transform
from rclpy.duration import Duration
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from rclpy.timer import Timer
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Header
from trajectory_msgs.msg import (
    JointTrajectory,
    JointTrajectoryPoint,
    MultiDOFJointTrajectory,
    MultiDOFJointTrajectoryPoint,
)

from dppo_robot.deploy.action_map import ActionMapper, PoseChunk, chunk_targets, gripper_to_finger
from dppo_robot.deploy.chunks import PolicyCore, TickResult, TimedChunk
from dppo_robot.deploy.config import DeployConfig
from dppo_robot_ros import convert
from dppo_robot_ros.common import (
    BEST_EFFORT,
    RELIABLE,
    SENSOR,
    GridTimer,
    declare_config,
    publish_diagnostic,
    spin_main,
    steady_timer,
)

CHANNELS = {
    "ee_pose": (PoseStamped, convert.pose_sample, BEST_EFFORT),
    "joint_states": (JointState, convert.joint_state_sample, RELIABLE),
    "gripper": (JointState, convert.joint_state_sample, RELIABLE),
    "part_poses": (PoseArray, convert.pose_array_sample, RELIABLE),
    "task_state": (JointState, convert.joint_state_sample, RELIABLE),
}

_NUMBER = re.compile(r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?")


class PolicyNode(LifecycleNode):
    def __init__(self, name: str = "dppo_policy", config: DeployConfig | None = None, bundle: str = "", **kw) -> None:
        super().__init__(name, **kw)
        self._given_config = config
        self._bundle_default = bundle
        self.declare_parameter("bundle", bundle)
        self.cfg: DeployConfig | None = None
        self.core: PolicyCore | None = None
        self.runtime = None
        self.last_error = ""
        self._subs: list = []
        self._pubs: list = []
        self._timer: GridTimer | None = None
        self._diag_timer = None
        self._fault = ""
        self._pending: tuple[float, float] | None = None  # (grid time, wall deadline) of a waiting tick
        self.stats = {"ticks": 0, "chunks": 0, "holds": 0}
        self.hold_reasons: Counter[str] = Counter()  # reason with its numbers as '#' -> ticks
        self.inference_ms: deque[float] = deque(maxlen=200)
        self.obs_to_chunk_ms: deque[float] = deque(maxlen=200)
        self.tick_wall: deque[float] = deque(maxlen=2000)
        self.chunk_log: deque[tuple[float, float]] = deque(maxlen=2000)  # (obs stamp s, wall publish s)
        self.mapper: ActionMapper | None = None
        self.poses: deque[tuple[float, np.ndarray, np.ndarray]] = deque(maxlen=4096)  # anchors: (t, pos, quat)
        self.last_chunk: tuple[TimedChunk, PoseChunk] | None = None  # env-unit actions and what went out

    # ---------------------------------------------------------------- lifecycle
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        from dppo_robot.runtime.errors import BundleError
        from dppo_robot.runtime.policy_runtime import PolicyRuntime, RuntimeConfig
        from dppo_robot.typed_config import ConfigError

        try:
            cfg, src = declare_config(self, self._given_config)
            self.cfg = cfg
            bundle = self.get_parameter("bundle").value
            if not bundle:
                raise ConfigError("parameter 'bundle' (policy bundle directory) is not set")
            p = cfg.policy
            rt = PolicyRuntime(bundle, RuntimeConfig(intra_op_threads=p.intra_op_threads, warmup_iters=p.warmup_iters))
            rt.check_compatible(
                [o.name for o in p.obs],
                p.action_names or None,
                list(cfg.topics.cameras),
                p.control_hz,
                source=f"the topic mapping of {src} (policy.obs / topics.cameras)",
            )
            self.mapper = ActionMapper(cfg.action, [(s.name, s.size) for s in rt.manifest.action_spec])
            self.runtime, self.core = rt, PolicyCore(rt, p)
        except (BundleError, ConfigError, ValueError, FileNotFoundError) as e:
            self.last_error = str(e)
            self.get_logger().error(f"configure failed: {e}")
            return TransitionCallbackReturn.FAILURE
        t = cfg.topics
        for ch in sorted({o.source for o in cfg.policy.obs}):
            typ, conv, qos = CHANNELS[ch]
            self._subs.append(self.create_subscription(typ, getattr(t, ch), self._on(ch, conv), qos))
        for cam, topic in t.cameras.items():
            self._subs.append(
                self.create_subscription(Image, topic, self._on(f"image:{cam}", convert.image_sample), SENSOR)
            )
        # anchors of delta chunks: the measured end-effector pose (also when no obs slice reads it)
        self._subs.append(self.create_subscription(PoseStamped, t.ee_pose, self._on_anchor_pose, BEST_EFFORT))
        self.chunk_pub = self.create_lifecycle_publisher(MultiDOFJointTrajectory, t.chunk, RELIABLE)
        self.gripper_pub = (
            self.create_lifecycle_publisher(JointTrajectory, t.gripper_chunk, RELIABLE)
            if self.mapper.grip is not None
            else None
        )
        self.tick_pub = self.create_lifecycle_publisher(Header, t.tick, RELIABLE)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", RELIABLE)
        self._pubs = [p for p in (self.chunk_pub, self.gripper_pub, self.tick_pub, self.diag_pub) if p is not None]
        self._diag_timer = steady_timer(self, 1.0 / cfg.policy.diagnostics_hz, self.publish_diagnostics)
        if cfg.policy.input_wait_s > 0:
            self._pubs.append(steady_timer(self, 0.01, self._check_pending))
        self.get_logger().info(f"configured: bundle '{rt.manifest.name}', {len(self._subs)} inputs")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        ret = super().on_activate(state)
        self.core.reset()
        self._timer = GridTimer(self, self.cfg.policy.control_hz, self._tick)
        return ret

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        if self._timer is not None:
            self._timer.destroy()
            self._timer = None
        self._publish_hold("deactivated")
        return super().on_deactivate(state)

    def _release(self) -> None:
        if self._timer is not None:
            self._timer.destroy()
            self._timer = None
        for s in self._subs:
            self.destroy_subscription(s)
        for p in self._pubs:
            if isinstance(p, Timer):
                self.destroy_timer(p)
            else:
                self.destroy_publisher(p)
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
        self._subs, self._pubs, self._diag_timer = [], [], None
        self.core = self.runtime = self.mapper = None
        self.poses.clear()

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    # ---------------------------------------------------------------- data path
    def _on_anchor_pose(self, msg: PoseStamped) -> None:
        s = convert.pose_sample(msg)
        if self.poses and s.stamp_s < self.poses[-1][0]:
            return  # out of order: anchors are looked up in time order
        self.poses.append((s.stamp_s, s.values["position"], s.values["quat_xyzw"]))

    def _anchor(self, t: float) -> tuple[np.ndarray, np.ndarray] | None:
        """The newest measured pose stamped at or before t."""
        for st, p, q in reversed(self.poses):
            if st <= t + 1e-6:
                return p, q
        return None

    def _on(self, channel: str, conv):
        def cb(msg) -> None:
            try:
                self.core.builder.add(channel, conv(msg))
            except (ValueError, AttributeError) as e:
                self._report_fault(f"bad '{channel}' message: {e}")
            if self._pending is not None and self._inputs_in(self._pending[0]):
                self._run_tick(self._pending[0])

        return cb

    def _inputs_in(self, grid: float) -> bool:
        """Every input stamped up to grid - input_latency_s has arrived."""
        return self.core.builder.complete(grid - self.cfg.policy.input_latency_s)

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _tick(self) -> None:
        hz = self.cfg.policy.control_hz
        grid = round(self._now_s() * hz) / hz
        self.tick_wall.append(time.monotonic())
        if self._pending is not None:  # the previous tick never got its inputs: run it now
            self._run_tick(self._pending[0])
        wait = self.cfg.policy.input_wait_s
        if wait > 0 and not self._inputs_in(grid):
            self._pending = (grid, time.monotonic() + wait)
            return
        self._run_tick(grid)

    def _check_pending(self) -> None:
        if self._pending is not None and time.monotonic() >= self._pending[1]:
            self._run_tick(self._pending[0])

    def _run_tick(self, grid: float) -> None:
        self._pending = None
        res: TickResult = self.core.tick(grid)
        self.stats["ticks"] += 1
        tick = Header()
        convert.set_stamp(tick.stamp, grid)
        anchor = self._anchor(res.chunk.stamp_s) if res.chunk is not None else None
        if res.chunk is not None and anchor is None:
            res.chunk, res.hold = None, True
            res.reason = f"no measured end-effector pose at or before the observation time {res.time_s:.3f} s"
            self.core.scheduler.reset()
        if res.chunk is not None:
            self._publish_chunk(res.chunk, anchor)
            self.stats["chunks"] += 1
            self.inference_ms.append(res.inference_s * 1e3)
            self.obs_to_chunk_ms.append((self._now_s() - res.chunk.stamp_s) * 1e3)
            self.chunk_log.append((res.chunk.stamp_s, time.time()))
            tick.frame_id = "chunk"
            self._fault = ""
        elif res.hold:
            self.stats["holds"] += 1
            self.hold_reasons[_NUMBER.sub("#", res.reason)] += 1
            tick.frame_id = f"hold: {res.reason}"
            self._report_fault(res.reason)
        else:
            tick.frame_id = "ok"
        self.tick_pub.publish(tick)

    def _publish_chunk(self, chunk: TimedChunk, anchor: tuple[np.ndarray, np.ndarray]) -> None:
        """The chunk as absolute targets: the gripper chunk first, then the Cartesian chunk."""
        cfg = self.cfg
        targets = chunk_targets(self.mapper, chunk.actions, *anchor)
        times = [(i + chunk.offset) * chunk.dt_s for i in range(len(chunk.actions))]
        pubs = [self.chunk_pub]
        if self.gripper_pub is not None:
            fingers = gripper_to_finger(targets.gripper, cfg.robot.finger_open_m)[:, None]
            names = [cfg.robot.finger_joint]
            g = convert.fill_joint_trajectory(
                JointTrajectory(), chunk.stamp_s, names, fingers, times, JointTrajectoryPoint
            )
            self.gripper_pub.publish(g)
            pubs.insert(0, self.gripper_pub)
        msg = convert.fill_multidof(
            MultiDOFJointTrajectory(),
            chunk.stamp_s,
            chunk.dt_s,
            chunk.offset,
            targets,
            cfg.robot.ee_joint,
            cfg.bridge.frame_id,
            MultiDOFJointTrajectoryPoint,
            Transform,
        )
        self.chunk_pub.publish(msg)
        if cfg.policy.lockstep:
            for p in pubs:
                p.wait_for_all_acked(Duration(seconds=0.5))
        self.last_chunk = (chunk, targets)

    def _publish_hold(self, reason: str) -> None:
        if self.cfg is None or not self._pubs:
            return
        empty = MultiDOFJointTrajectory()
        convert.set_stamp(empty.header.stamp, self._now_s())
        self.chunk_pub.publish(empty)
        tick = Header(frame_id=f"hold: {reason}")
        convert.set_stamp(tick.stamp, self._now_s())
        self.tick_pub.publish(tick)

    # ---------------------------------------------------------------- diagnostics
    def _report_fault(self, reason: str) -> None:
        if reason and reason != self._fault:
            self._fault = reason
            self.get_logger().warning(f"no chunk: {reason}")
            self.publish_diagnostics()

    def publish_diagnostics(self) -> None:
        if not self._pubs or self.core is None:
            return
        st = DiagnosticStatus(name=f"{self.get_name()}: policy", hardware_id=self.runtime.manifest.name)
        st.level = DiagnosticStatus.ERROR if self._fault else DiagnosticStatus.OK
        st.message = self._fault or "ok"
        vals = {
            "ticks": self.stats["ticks"],
            "chunks": self.stats["chunks"],
            "holds": self.stats["holds"],
            "inference_ms_p50": float(np.median(self.inference_ms)) if self.inference_ms else float("nan"),
            "obs_to_chunk_ms_p50": float(np.median(self.obs_to_chunk_ms)) if self.obs_to_chunk_ms else float("nan"),
        }
        now = self._now_s()
        for ch, buf in self.core.builder.buffers.items():
            vals[f"{ch}.received"] = buf.received
            vals[f"{ch}.age_s"] = round(now - buf.newest.stamp_s, 4) if buf.newest else float("inf")
        publish_diagnostic(self, self.diag_pub, st, vals)


def main(args: list[str] | None = None) -> None:
    spin_main(PolicyNode, args)

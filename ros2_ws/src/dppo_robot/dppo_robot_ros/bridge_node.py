"""The Franka bridge node: action chunks -> a safe target stream for the arm's controller.

Inputs: chunks (trajectory_msgs/MultiDOFJointTrajectory of absolute end-effector targets and,
when the action mapping has a gripper, the JointTrajectory of the finger joint with the same
stamp, from the policy node; executed per bridge.execute), the policy tick (std_msgs/Header),
the measured end-effector pose (PoseStamped, best effort as franka_ros2 publishes it) and the
robot mode (std_msgs/UInt8 carrying franka_msgs/FrankaRobotState.robot_mode; a relay from
/franka_robot_state_broadcaster/robot_state fills it on the robot). Services ~/stop and
~/resume (std_srvs/Trigger). Output at stream_hz: target_pose (PoseStamped, depth 1, for a
Cartesian impedance controller; stamp = the time the pose is meant for), or with bridge.output
joint_trajectory the same safe target through IK (dppo_robot.deploy.ik, seeded from
topics.joint_states) as a one-point JointTrajectory of robot.joint_names on
topics.joint_trajectory (reached at header.stamp + time_from_start = that time), and the gripper
command: franka_gripper Move/Grasp actions when franka_msgs is installed, else std_msgs/Float64
(-1 open .. +1 close) on topics.gripper_command. Diagnostics report holds, clips and stops.
"""

from __future__ import annotations

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Header, UInt8
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint, MultiDOFJointTrajectory

from dppo_robot.deploy.action_map import PoseChunk, PoseChunkMapper, finger_to_gripper, pose_rows
from dppo_robot.deploy.bridge import BridgeCore, StreamTarget
from dppo_robot.deploy.chunks import TimedChunk
from dppo_robot.deploy.config import DeployConfig
from dppo_robot_ros import convert
from dppo_robot_ros.common import (
    BEST_EFFORT,
    RELIABLE,
    TARGET,
    declare_config,
    publish_diagnostic,
    spin_main,
    steady_timer,
)

try:  # franka_gripper actions exist only where franka_msgs is installed (the robot PC)
    from franka_msgs.action import Grasp, Move  # type: ignore[import-not-found]
    from rclpy.action import ActionClient

    HAVE_FRANKA_MSGS = True
except ImportError:  # standard-message fallback
    HAVE_FRANKA_MSGS = False


class GripperActions:
    """franka_gripper ~/grasp (close) and ~/move (open) goals, sent when the command changes side."""

    def __init__(self, node: Node, ns: str = "/franka_gripper", open_width_m: float = 0.08) -> None:
        self.grasp = ActionClient(node, Grasp, f"{ns}/grasp")
        self.move = ActionClient(node, Move, f"{ns}/move")
        self.open_width_m = open_width_m
        self.closed: bool | None = None

    def command(self, value: float) -> None:
        closed = value > 0
        if closed == self.closed:
            return
        self.closed = closed
        if closed:
            g = Grasp.Goal(width=0.0, speed=0.1, force=20.0)
            g.epsilon.inner, g.epsilon.outer = 0.08, 0.08
            self.grasp.send_goal_async(g)
        else:
            self.move.send_goal_async(Move.Goal(width=self.open_width_m, speed=0.1))


class BridgeNode(Node):
    def __init__(
        self,
        name: str = "franka_bridge",
        config: DeployConfig | None = None,
        action_slices: list[tuple[str, int]] | None = None,
        **kw,
    ) -> None:
        super().__init__(name, **kw)
        cfg, self.config_source = declare_config(self, config)
        self.cfg = cfg
        # action_slices: accepted for callers of the old private chunk format; chunks now carry
        # absolute targets, whatever the bundle's action layout.
        self.declare_parameter("dry_run", False)
        self.declare_parameter("robot_ip", "")  # informational: franka_ros2 owns the connection
        self.dry_run = bool(self.get_parameter("dry_run").value)
        execute = cfg.bridge.execute or ("steps" if cfg.action.mode == "delta_pose" else "absolute")
        self.mapper = PoseChunkMapper(execute)
        self.core = BridgeCore(cfg.bridge, self.mapper, cfg.policy.control_hz)
        t = cfg.topics
        self.create_subscription(MultiDOFJointTrajectory, t.chunk, self._on_chunk, RELIABLE)
        self.expect_gripper = bool(cfg.action.gripper_slice)
        self._cart: tuple[float, float, int, PoseChunk] | None = None  # waiting for its gripper chunk
        self._grip: dict[float, np.ndarray] = {}  # stamp -> finger positions
        if self.expect_gripper:
            self.create_subscription(JointTrajectory, t.gripper_chunk, self._on_gripper_chunk, RELIABLE)
        self.ik = None
        self.joints: np.ndarray | None = None  # measured arm joints (robot.joint_names order)
        self._ik_seed: tuple[float, np.ndarray] | None = None  # (stamp, last solution)
        if cfg.bridge.output == "joint_trajectory":
            from dppo_robot.deploy.ik import PandaIK

            r = cfg.robot
            self.ik = PandaIK(r.base_pos_m, r.base_quat_xyzw, r.ik_max_iters, r.ik_tol_m, r.ik_tol_rad)
            self.create_subscription(JointState, t.joint_states, self._on_joints, RELIABLE)
            self.joint_pub = self.create_publisher(JointTrajectory, t.joint_trajectory, TARGET)
        self.create_subscription(Header, t.tick, self._on_tick, RELIABLE)
        self.create_subscription(PoseStamped, t.ee_pose, self._on_pose, BEST_EFFORT)
        self.create_subscription(UInt8, t.robot_mode, self._on_mode, RELIABLE)
        self.target_pub = self.create_publisher(PoseStamped, t.target_pose, TARGET)
        self.gripper_pub = self.create_publisher(Float64, t.gripper_command, RELIABLE)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", RELIABLE)
        self.gripper_actions = GripperActions(self) if HAVE_FRANKA_MSGS and not self.dry_run else None
        self.create_service(Trigger, "~/stop", self._srv_stop)
        self.create_service(Trigger, "~/resume", self._srv_resume)
        self.timer = self.create_timer(1.0 / cfg.bridge.stream_hz, self._tick)
        steady_timer(self, 1.0, self.publish_diagnostics)
        self.published = 0
        self.last_target: StreamTarget | None = None
        self._last_report = ""

    # ---------------------------------------------------------------- inputs
    def _on_chunk(self, msg: MultiDOFJointTrajectory) -> None:
        try:
            stamp, dt, offset, chunk = convert.multidof_to_pose_chunk(msg)
        except (AttributeError, IndexError, ValueError) as e:
            self._report(DiagnosticStatus.ERROR, f"bad chunk message: {e}")
            return
        if len(chunk.positions) == 0 or not self.expect_gripper or stamp in self._grip:
            self._feed(stamp, dt, offset, chunk)
        else:  # its gripper chunk is still in flight
            self._cart = (stamp, dt, offset, chunk)

    def _on_gripper_chunk(self, msg: JointTrajectory) -> None:
        try:
            stamp, _, fingers = convert.joint_trajectory_positions(msg, [self.cfg.robot.finger_joint])
        except (AttributeError, IndexError, ValueError) as e:
            self._report(DiagnosticStatus.ERROR, f"bad gripper chunk: {e}")
            return
        self._grip[stamp] = fingers[:, 0]
        for old in sorted(self._grip)[:-4]:
            del self._grip[old]
        if self._cart is not None and self._cart[0] == stamp:
            cart, self._cart = self._cart, None
            self._feed(*cart)

    def _feed(self, stamp: float, dt: float, offset: int, chunk: PoseChunk) -> None:
        """A complete chunk (targets + gripper) -> the core; an empty one cancels."""
        n = len(chunk.positions)
        if n and self.expect_gripper:
            fingers = self._grip.get(stamp)
            if fingers is None or len(fingers) != n:
                self._report(DiagnosticStatus.ERROR, f"gripper chunk of {stamp:.3f} s does not match its chunk")
                return
            chunk = PoseChunk(chunk.positions, chunk.quats, finger_to_gripper(fingers, self.cfg.robot.finger_open_m))
        self.core.on_chunk(TimedChunk(stamp, dt, pose_rows(chunk), offset))

    def _on_joints(self, msg: JointState) -> None:
        idx = {n: i for i, n in enumerate(msg.name)}
        names = self.cfg.robot.joint_names
        if all(n in idx for n in names):
            self.joints = np.array([msg.position[idx[n]] for n in names], np.float64)

    def _on_tick(self, msg: Header) -> None:
        if self.core is not None:
            reason = msg.frame_id[len("hold: ") :] if msg.frame_id.startswith("hold") else ""
            self.core.on_policy_tick(convert.stamp_to_s(msg.stamp), reason)

    def _on_pose(self, msg: PoseStamped) -> None:
        s = convert.pose_sample(msg)
        if self.core is not None:
            self.core.on_pose(s.stamp_s, s.values["position"], s.values["quat_xyzw"])

    def _on_mode(self, msg: UInt8) -> None:
        if self.core is not None:
            was = self.core.stopped_reason
            self.core.on_robot_mode(msg.data)
            if self.core.stopped_reason and not was:
                self._report(DiagnosticStatus.ERROR, self.core.stopped_reason)

    def _srv_stop(self, req, resp):
        if self.core is not None:
            self.core.stop("stop service")
        resp.success, resp.message = True, "stopped"
        self._report(DiagnosticStatus.WARN, "stopped by service")
        return resp

    def _srv_resume(self, req, resp):
        if self.core is None:
            resp.success, resp.message = True, "nothing to resume"
            return resp
        resp.success, resp.message = self.core.resume()
        return resp

    # ---------------------------------------------------------------- output
    def _tick(self) -> None:
        if self.core is None:
            return
        now = self.get_clock().now().nanoseconds * 1e-9
        out = self.core.tick(now)
        if not out.publish:
            return
        self.last_target = out
        if out.clipped:
            self._report(DiagnosticStatus.WARN, self.core.last_clip)
        if self.dry_run:
            return
        if out.gripper is not None and not out.hold:  # before the pose: a follower reads both together
            if self.gripper_actions is not None:
                self.gripper_actions.command(out.gripper)
            self.gripper_pub.publish(Float64(data=float(out.gripper)))
        if self.ik is not None:
            if not self._publish_joints(out, now):
                return
        else:
            pose = convert.fill_pose(PoseStamped(), out.stamp_s, out.position, out.quat, self.cfg.bridge.frame_id)
            self.target_pub.publish(pose)
        self.published += 1

    def _publish_joints(self, out: StreamTarget, now: float) -> bool:
        """IK of the safe target (seeded from the measured joints, else the last solution) -> one
        JointTrajectory point reached at out.stamp_s. An unreachable target gets the closest solution
        within robot.ik_max_residual_* (counted as ik_residual), else nothing is published."""
        seed = self.joints if self.joints is not None else (self._ik_seed[1] if self._ik_seed else None)
        if seed is None:
            self._report(DiagnosticStatus.WARN, f"no measured joints on {self.cfg.topics.joint_states}: no IK seed")
            return False
        res = self.ik.solve(out.position, out.quat, seed)
        r = self.cfg.robot
        if not res.converged:
            self.core.counters["ik_residual"] = self.core.counters.get("ik_residual", 0) + 1
            if res.position_error_m > r.ik_max_residual_m or res.rotation_error_rad > r.ik_max_residual_rad:
                self._report(
                    DiagnosticStatus.WARN,
                    f"IK residual {res.position_error_m:.3f} m / {res.rotation_error_rad:.3f} rad beyond "
                    f"robot.ik_max_residual_*: target held back",
                )
                self._ik_seed = None
                return False
        self._ik_seed = (out.stamp_s, res.q)
        tfs = out.stamp_s - now if out.stamp_s - now > 1e-6 else 1.0 / self.cfg.bridge.stream_hz
        msg = convert.fill_joint_trajectory(
            JointTrajectory(), out.stamp_s - tfs, self.cfg.robot.joint_names, res.q[None], [tfs], JointTrajectoryPoint
        )
        self.joint_pub.publish(msg)
        return True

    def _report(self, level: int, message: str) -> None:
        if message != self._last_report:
            self._last_report = message
            (self.get_logger().error if level == DiagnosticStatus.ERROR else self.get_logger().warning)(message)
            self.publish_diagnostics(level, message)

    def publish_diagnostics(self, level: int | None = None, message: str = "") -> None:
        st = DiagnosticStatus(name=f"{self.get_name()}: bridge", hardware_id="franka")
        c = self.core.counters if self.core else {}
        if level is None:
            stopped = bool(self.core and self.core.stopped_reason)
            level = DiagnosticStatus.ERROR if stopped else DiagnosticStatus.OK
            message = self.core.stopped_reason if stopped else "ok"
        st.level, st.message = level, message
        publish_diagnostic(self, self.diag_pub, st, c)


def main(args: list[str] | None = None) -> None:
    spin_main(BridgeNode, args)

"""The Franka bridge node: action chunks -> a safe target stream for the arm's controller.

Inputs: chunks (JointTrajectory from the policy node), the policy tick (std_msgs/Header),
the measured end-effector pose (PoseStamped, best effort as franka_ros2 publishes it) and the
robot mode (std_msgs/UInt8 carrying franka_msgs/FrankaRobotState.robot_mode; a relay from
/franka_robot_state_broadcaster/robot_state fills it on the robot). Services ~/stop and
~/resume (std_srvs/Trigger). Output at stream_hz: target_pose (PoseStamped, depth 1, for a
Cartesian impedance controller; stamp = the time the pose is meant for) and the gripper
command: franka_gripper Move/Grasp actions when franka_msgs is installed, else std_msgs/Float64
(-1 open .. +1 close) on topics.gripper_command. Diagnostics report holds, clips and stops.
"""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from std_msgs.msg import Float64, Header, UInt8
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from dppo_robot.deploy.action_map import ActionMapper
from dppo_robot.deploy.bridge import BridgeCore, StreamTarget
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
        # The bridge reads the action layout from the chunks' joint_names; the mapping needs the
        # slice sizes: from the caller, or from the policy.action_names + names in the first chunk.
        self.declare_parameter("dry_run", False)
        self.declare_parameter("robot_ip", "")  # informational: franka_ros2 owns the connection
        self.dry_run = bool(self.get_parameter("dry_run").value)
        self.mapper: ActionMapper | None = ActionMapper(cfg.action, action_slices) if action_slices else None
        self.core = BridgeCore(cfg.bridge, self.mapper, cfg.policy.control_hz)
        t = cfg.topics
        self.create_subscription(JointTrajectory, t.chunk, self._on_chunk, RELIABLE)
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
    def _ensure_core(self, names: list[str]) -> bool:
        if self.mapper is not None:
            return True
        sizes: dict[str, int] = {}
        for n in names:  # "slice/i"
            base = n.rsplit("/", 1)[0]
            sizes[base] = sizes.get(base, 0) + 1
        try:
            self.mapper = ActionMapper(self.cfg.action, list(sizes.items()))
        except ValueError as e:
            self._report(DiagnosticStatus.ERROR, f"chunk layout does not fit the action mapping: {e}")
            return False
        self.core.mapper = self.mapper
        return True

    def _on_chunk(self, msg: JointTrajectory) -> None:
        chunk = convert.trajectory_to_chunk(msg)
        if len(chunk.actions) and not self._ensure_core(chunk.names):
            return
        if self.core is not None:
            self.core.on_chunk(chunk)

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
        pose = convert.fill_pose(PoseStamped(), out.stamp_s, out.position, out.quat, self.cfg.bridge.frame_id)
        self.target_pub.publish(pose)
        self.published += 1

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

"""The Franka bridge node (lifecycle): action chunks -> a safe target stream for the arm's controller.

Inputs: chunks (JointTrajectory from the policy node), the policy tick (std_msgs/Header),
the measured end-effector pose (PoseStamped, best effort as franka_ros2 publishes it) and the
robot mode (std_msgs/UInt8 carrying franka_msgs/FrankaRobotState.robot_mode; robot_mode_relay
fills it on the robot). Services ~/stop and ~/resume (std_srvs/Trigger). Output at stream_hz
while active: target_pose (PoseStamped, depth 1, for a Cartesian impedance controller; stamp =
the time the pose is meant for) and the gripper command: franka_gripper Move/Grasp goals when
franka_msgs is installed (names from bridge.gripper), and std_msgs/Float64 (-1 open .. +1
close) on topics.gripper_command. Diagnostics report holds, clips, refusals, stops, gripper goals.

Lifecycle: unconfigured / inactive publish nothing to the robot (inputs, the stop latch and the
services work in every state); configure creates the output publishers, activate starts the
stream from the measured pose, deactivate stops it (the controller keeps its last target). With
dry_run the output publishers and gripper clients are never created: nothing goes to the robot.

Safety limits are ROS parameters (safety.workspace_min_m, safety.workspace_max_m,
safety.max_step_m, safety.max_step_rad; defaults from the deploy config's bridge.safety), set
through the parameter services or a ros__parameters file (config/params/franka_bridge_safety.yaml).
While the bridge is active a change may only narrow them: a wider limit is refused.
"""

from __future__ import annotations

import copy

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor, ParameterType, SetParametersResult
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from std_msgs.msg import Float64, Header, UInt8
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from dppo_robot.deploy.action_map import ActionMapper
from dppo_robot.deploy.bridge import BridgeCore, StreamTarget
from dppo_robot.deploy.config import DeployConfig, SafetyConfig
from dppo_robot.deploy.gripper import GripperGoals
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

    HAVE_FRANKA_MSGS = True
except ImportError:  # standard-message fallback
    HAVE_FRANKA_MSGS = False

# Parameter ranges: sanity bounds (simulated tasks use world frames, hence the generous box bound).
WORKSPACE_ABS_M = 10.0
STEP_M_RANGE = (1e-5, 0.05)  # per stream tick: up to 5 m/s at 100 Hz
STEP_RAD_RANGE = (1e-4, 0.5)


class ActionGoalClient:
    """Generic rclpy side of GripperGoals: one ActionClient per side, goal factories, result reader.

    make_goal(closed) -> goal message; read_result(result) -> (success, error). Works with any
    action type; the bridge binds franka_msgs Grasp (close) and Move (open).
    """

    def __init__(self, node, goals: GripperGoals, clients: dict, make_goal, read_result) -> None:
        self.node, self.goals, self.clients = node, goals, clients  # clients: {True: close, False: open}
        self.make_goal, self.read_result = make_goal, read_result

    def _now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def poll(self) -> None:
        a = self.goals.current
        if a is None:
            return
        client = self.clients[a.closed]
        send = self.goals.poll(self._now(), client.server_is_ready())
        if send is None:
            return
        closed, token = send
        fut = client.send_goal_async(self.make_goal(closed))
        fut.add_done_callback(lambda f, t=token: self._on_response(t, f))

    def _on_response(self, token: int, fut) -> None:
        try:
            handle = fut.result()
        except Exception as e:  # the goal request failed in transport: a rejection, retried
            self.node.get_logger().warning(f"gripper goal request failed: {e}")
            handle = None
        accepted = bool(handle is not None and handle.accepted)
        self.goals.on_response(token, accepted, self._now())
        if accepted:
            handle.get_result_async().add_done_callback(lambda f, t=token: self._on_result(t, f))

    def _on_result(self, token: int, fut) -> None:
        try:
            res = fut.result()
        except Exception:  # counted as a failed goal below (retried)
            res = None
        ok, err = self.read_result(res.result) if res is not None else (False, "no result")
        self.goals.on_result(token, ok, err, self._now())

    def destroy(self) -> None:
        for c in self.clients.values():
            c.destroy()


def franka_gripper_client(node, goals: GripperGoals) -> ActionGoalClient:
    """franka_gripper ~/grasp (close) and ~/move (open), names from bridge.gripper."""
    from rclpy.action import ActionClient

    g = goals.cfg

    def make_goal(closed: bool):
        if closed:
            goal = Grasp.Goal(width=g.grasp_width_m, speed=g.speed_mps, force=g.force_n)
            goal.epsilon.inner, goal.epsilon.outer = g.epsilon_inner_m, g.epsilon_outer_m
            return goal
        return Move.Goal(width=g.open_width_m, speed=g.speed_mps)

    clients = {
        True: ActionClient(node, Grasp, g.action_name(g.grasp_action)),
        False: ActionClient(node, Move, g.action_name(g.move_action)),
    }
    return ActionGoalClient(node, goals, clients, make_goal, lambda r: (bool(r.success), str(r.error)))


def _range_descriptor(desc: str, lo: float, hi: float) -> ParameterDescriptor:
    return ParameterDescriptor(
        description=desc,
        type=ParameterType.PARAMETER_DOUBLE,
        floating_point_range=[FloatingPointRange(from_value=lo, to_value=hi, step=0.0)],
    )


class BridgeNode(LifecycleNode):
    def __init__(
        self,
        name: str = "franka_bridge",
        config: DeployConfig | None = None,
        action_slices: list[tuple[str, int]] | None = None,
        **kw,
    ) -> None:
        super().__init__(name, **kw)
        cfg, self.config_source = declare_config(self, config)
        self.cfg = cfg = copy.deepcopy(cfg)  # the safety block follows this node's parameters
        # The bridge reads the action layout from the chunks' joint_names; the mapping needs the
        # slice sizes: from the caller, or from the policy.action_names + names in the first chunk.
        self.declare_parameter("dry_run", False)
        self.declare_parameter("robot_ip", "")  # informational: franka_ros2 owns the connection
        self.dry_run = bool(self.get_parameter("dry_run").value)
        self.mapper: ActionMapper | None = ActionMapper(cfg.action, action_slices) if action_slices else None
        cfg.bridge.safety = self._declare_safety(cfg.bridge.safety)
        self.core = BridgeCore(cfg.bridge, self.mapper, cfg.policy.control_hz)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        t = cfg.topics
        self.create_subscription(JointTrajectory, t.chunk, self._on_chunk, RELIABLE)
        self.create_subscription(Header, t.tick, self._on_tick, RELIABLE)
        self.create_subscription(PoseStamped, t.ee_pose, self._on_pose, BEST_EFFORT)
        self.create_subscription(UInt8, t.robot_mode, self._on_mode, RELIABLE)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", RELIABLE)
        self.create_service(Trigger, "~/stop", self._srv_stop)
        self.create_service(Trigger, "~/resume", self._srv_resume)
        steady_timer(self, 1.0, self.publish_diagnostics)
        self.target_pub = self.gripper_pub = None
        self.gripper_goals = GripperGoals(cfg.bridge.gripper)
        self.gripper_client: ActionGoalClient | None = None
        self._gripper_timer = None
        self.timer = None  # the stream timer, while active
        self.active = False
        self.published = 0
        self.last_target: StreamTarget | None = None
        self._last_report = ""

    # ---------------------------------------------------------------- parameters
    def _declare_safety(self, s: SafetyConfig) -> SafetyConfig:
        arr = ParameterType.PARAMETER_DOUBLE_ARRAY
        box = f"m, base frame; each value within +-{WORKSPACE_ABS_M} m"
        self.declare_parameter(
            "safety.workspace_min_m",
            [float(v) for v in s.workspace_min_m],
            ParameterDescriptor(description=f"workspace box lower corner x, y, z ({box})", type=arr),
        )
        self.declare_parameter(
            "safety.workspace_max_m",
            [float(v) for v in s.workspace_max_m],
            ParameterDescriptor(description=f"workspace box upper corner x, y, z ({box})", type=arr),
        )
        self.declare_parameter(
            "safety.max_step_m", float(s.max_step_m), _range_descriptor("translation per stream tick, m", *STEP_M_RANGE)
        )
        self.declare_parameter(
            "safety.max_step_rad",
            float(s.max_step_rad),
            _range_descriptor("rotation per stream tick, rad", *STEP_RAD_RANGE),
        )
        out = self._safety_from({})
        err = self._check_safety(out)
        if err:
            raise ValueError(f"{self.get_name()}: safety parameters: {err}")
        return out

    def _safety_from(self, changes: dict) -> SafetyConfig:
        def val(name: str):
            return changes[name] if name in changes else self.get_parameter(name).value

        return SafetyConfig(
            workspace_min_m=[float(v) for v in val("safety.workspace_min_m")],
            workspace_max_m=[float(v) for v in val("safety.workspace_max_m")],
            max_step_m=float(val("safety.max_step_m")),
            max_step_rad=float(val("safety.max_step_rad")),
        )

    @staticmethod
    def _check_safety(s: SafetyConfig) -> str:
        try:
            s.validate()
        except ValueError as e:
            return str(e)
        if any(abs(v) > WORKSPACE_ABS_M for v in [*s.workspace_min_m, *s.workspace_max_m]):
            return f"workspace values must be within +-{WORKSPACE_ABS_M} m"
        return ""

    def _on_set_parameters(self, params) -> SetParametersResult:
        changes = {p.name: p.value for p in params if p.name.startswith("safety.")}
        if not changes:
            return SetParametersResult(successful=True)
        new = self._safety_from(changes)
        err = self._check_safety(new)
        if not err and self.active:
            wider = new.widened_from(self.core.cfg.safety)
            if wider:
                err = f"refused while the bridge is active: widens {', '.join(wider)} (deactivate first)"
        if err:
            self.get_logger().warning(f"safety parameters not changed: {err}")
            return SetParametersResult(successful=False, reason=err)
        self.core.set_safety(new)
        self.get_logger().info(f"safety limits now {new}")
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------- lifecycle
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        t = self.cfg.topics
        if not self.dry_run:  # dry run: no publisher to the robot exists at all
            self.target_pub = self.create_lifecycle_publisher(PoseStamped, t.target_pose, TARGET)
            self.gripper_pub = self.create_lifecycle_publisher(Float64, t.gripper_command, RELIABLE)
            if HAVE_FRANKA_MSGS and self.cfg.bridge.gripper.enabled:
                self.gripper_client = franka_gripper_client(self, self.gripper_goals)
                self._gripper_timer = self.create_timer(0.05, self._poll_gripper)
        if not HAVE_FRANKA_MSGS and not self.dry_run:
            self.get_logger().info(
                "franka_msgs is not importable: no franka_gripper goals; the gripper command goes out only as "
                f"std_msgs/Float64 on {t.gripper_command}"
            )
        return TransitionCallbackReturn.SUCCESS

    def _poll_gripper(self) -> None:
        self.gripper_client.poll()
        err = self.gripper_goals.last_error
        if err:
            self._report(DiagnosticStatus.WARN, err)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        ret = super().on_activate(state)
        self.core.last = None  # start from the measured pose
        self.active = True
        self.timer = self.create_timer(1.0 / self.cfg.bridge.stream_hz, self._tick)
        return ret

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._stop_stream()
        return super().on_deactivate(state)

    def _stop_stream(self) -> None:
        self.active = False
        if self.timer is not None:
            self.destroy_timer(self.timer)
            self.timer = None

    def _release(self) -> None:
        self._stop_stream()
        if self._gripper_timer is not None:
            self.destroy_timer(self._gripper_timer)
            self._gripper_timer = None
        if self.gripper_client is not None:
            self.gripper_client.destroy()
            self.gripper_client = None
        for p in (self.target_pub, self.gripper_pub):
            if p is not None:
                self.destroy_publisher(p)
        self.target_pub = self.gripper_pub = None

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

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
        if resp.success:
            self._report(DiagnosticStatus.OK, "resumed")
        return resp

    # ---------------------------------------------------------------- output
    def _tick(self) -> None:
        if self.core is None or not self.active:
            return
        now = self.get_clock().now().nanoseconds * 1e-9
        out = self.core.tick(now)
        if out.refused:
            self._report(DiagnosticStatus.ERROR, out.reasons[0])
        if not out.publish:
            return
        self.last_target = out
        if out.clipped:
            self._report(DiagnosticStatus.WARN, self.core.last_clip)
        if self.target_pub is None:  # dry run
            return
        if out.gripper is not None and not out.hold:  # before the pose: a follower reads both together
            if self.gripper_client is not None:
                self.gripper_goals.command(out.gripper > 0, now)
            self.gripper_pub.publish(Float64(data=float(out.gripper)))
        pose = convert.fill_pose(PoseStamped(), out.stamp_s, out.position, out.quat, self.cfg.bridge.frame_id)
        self.target_pub.publish(pose)
        self.published += 1

    def _report(self, level: int, message: str) -> None:
        """Log and publish a diagnostic once per new message; one logging call site per severity
        (rclpy refuses a call site whose severity changes between calls)."""
        if message == self._last_report:
            return
        self._last_report = message
        if level == DiagnosticStatus.ERROR:
            self.get_logger().error(message)
        elif level == DiagnosticStatus.WARN:
            self.get_logger().warning(message)
        else:
            self.get_logger().info(message)
        self.publish_diagnostics(level, message)

    def publish_diagnostics(self, level: int | None = None, message: str = "") -> None:
        st = DiagnosticStatus(name=f"{self.get_name()}: bridge", hardware_id="franka")
        c = dict(self.core.counters) if self.core else {}
        c.update(self.gripper_goals.status)
        c["active"] = self.active
        c["dry_run"] = self.dry_run
        # 0 = no robot_mode_relay (or other source) runs: REFLEX / USER_STOPPED would go unseen
        c["robot_mode_publishers"] = self.count_publishers(self.cfg.topics.robot_mode)
        if level is None:
            stopped = bool(self.core and self.core.stopped_reason)
            level = DiagnosticStatus.ERROR if stopped else DiagnosticStatus.OK
            message = self.core.stopped_reason if stopped else "ok"
        st.level, st.message = level, message
        publish_diagnostic(self, self.diag_pub, st, c)


def main(args: list[str] | None = None) -> None:
    spin_main(BridgeNode, args)

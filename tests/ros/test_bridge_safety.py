"""The Franka bridge's safety behaviour over real Fast DDS on the wall clock: stops after warnings,
step limits on every published target, lifecycle gating and dry run, safety parameters."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.ros.conftest import ROS_PKG, reach2d_config

pytestmark = pytest.mark.ros

FRANKA_READY_POS = np.array([0.307, 0.0, 0.487])  # franka_ros2's ready pose, base frame (m)
DOWN_QUAT = np.array([1.0, 0.0, 0.0, 0.0])  # hand pointing down, xyzw


def deploy_franka_config():
    from dppo_robot.deploy.config import DeployConfig
    from dppo_robot.typed_config import load_yaml

    return load_yaml(DeployConfig, ROS_PKG / "config" / "deploy_franka.yaml")


def wait_until(pred, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


def call(client, request, timeout_s: float = 5.0):
    """A service call answered within timeout_s, else None (the server's executor is dead)."""
    if not client.wait_for_service(timeout_sec=timeout_s):
        return None
    fut = client.call_async(request)
    wait_until(fut.done, timeout_s)
    return fut.result() if fut.done() else None


class PoseFeed:
    """A measured end-effector pose published best effort from a wall-clock timer of `node`."""

    def __init__(self, node, topic: str, position, quat=DOWN_QUAT, hz: float = 100.0) -> None:
        from dppo_robot_ros.common import BEST_EFFORT_PUB
        from geometry_msgs.msg import PoseStamped

        self.node, self.PoseStamped = node, PoseStamped
        self.position, self.quat = np.asarray(position, float), np.asarray(quat, float)
        self.pub = node.create_publisher(PoseStamped, topic, BEST_EFFORT_PUB)
        self.timer = node.create_timer(1.0 / hz, self.publish)

    def publish(self) -> None:
        from dppo_robot_ros import convert

        t = self.node.get_clock().now().nanoseconds * 1e-9
        self.pub.publish(convert.fill_pose(self.PoseStamped(), t, self.position, self.quat))


class TargetLog:
    """Every target_pose the test receives: (stamp s, position [3], quat [4])."""

    def __init__(self, node, topic: str) -> None:
        from geometry_msgs.msg import PoseStamped

        self.items: list[tuple[float, np.ndarray, np.ndarray]] = []
        self.lock = threading.Lock()
        node.create_subscription(PoseStamped, topic, self._on, 100)  # reliable, as the bridge publishes

    def _on(self, m) -> None:
        from dppo_robot_ros import convert

        s = convert.pose_sample(m)
        with self.lock:
            self.items.append((s.stamp_s, s.values["position"], s.values["quat_xyzw"]))

    def __len__(self) -> int:
        return len(self.items)

    def snapshot(self):
        with self.lock:
            return list(self.items)


def quat_angle(a: np.ndarray, b: np.ndarray) -> float:
    d = abs(float(np.dot(a / np.linalg.norm(a), b / np.linalg.norm(b))))
    return 2.0 * float(np.arccos(min(1.0, d)))


def assert_within_step_limits(targets, max_step_m: float, max_step_rad: float, stream_hz: float) -> None:
    """Each target within the per-tick limits of the previous one (the limits are speeds: a target
    stamped dt after the previous may move max_step * max(1, dt * stream_hz))."""
    assert len(targets) >= 2
    for (s0, p0, q0), (s1, p1, q1) in itertools.pairwise(targets):
        periods = max(1.0, (s1 - s0) * stream_hz)
        step = float(np.linalg.norm(p1 - p0))
        # tolerance: stamps are float seconds of ~1.8e9 (resolution ~2.4e-7 s) rounded to ns on the wire
        assert step <= max_step_m * periods + 1e-6, (step, max_step_m, periods, p0, p1)
        assert quat_angle(q0, q1) <= max_step_rad * periods + 1e-5, (q0, q1, periods)


def diag_messages(diags, level: int) -> list[str]:
    return [s.message for d in list(diags) for s in d.status if s.level == level and "bridge" in s.name]


# ------------------------------------------------------------------------------------------ finding 1
def test_bridge_survives_robot_stops_after_clip_warnings(ros_context, reach2d_bundle):
    """Clip warnings, then REFLEX, USER_STOPPED, recovery: the real node stays up, the stop latches,
    resume is refused until the robot has recovered and then works."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from dppo_robot_ros.bridge_node import BridgeNode
    from dppo_robot_ros.compose import Spinner
    from dppo_robot_ros.policy_node import PolicyNode
    from rclpy.lifecycle import TransitionCallbackReturn
    from sensor_msgs.msg import JointState
    from std_msgs.msg import UInt8
    from std_srvs.srv import Trigger

    from dppo_robot.deploy.bridge import RobotMode

    cfg = reach2d_config()
    cfg.policy.input_wait_s, cfg.policy.lockstep = 0.0, False
    # a box of +-2 cm around the measured pose: the policy's 10 cm steps get clipped (warnings)
    cfg.bridge.safety.workspace_min_m, cfg.bridge.safety.workspace_max_m = [-0.02, -0.02, -0.1], [0.02, 0.02, 0.1]
    policy = PolicyNode(config=cfg, bundle=str(reach2d_bundle), context=ros_context)
    bridge = BridgeNode(config=cfg, action_slices=[("vel", 2)], context=ros_context)
    test = rclpy.create_node("test_stops", context=ros_context)
    PoseFeed(test, cfg.topics.ee_pose, [0.0, 0.0, 0.0], [0, 0, 0, 1.0], hz=30.0)
    state_pub = test.create_publisher(JointState, cfg.topics.task_state, 10)

    def state() -> None:
        from dppo_robot_ros import convert

        t = test.get_clock().now().nanoseconds * 1e-9
        names = ["pos/0", "pos/1", "goal_rel/0", "goal_rel/1"]
        state_pub.publish(convert.fill_joint_state(JointState(), t, names, np.array([0.0, 0.0, 0.8, 0.8])))

    test.create_timer(1 / 30, state)
    mode_pub = test.create_publisher(UInt8, cfg.topics.robot_mode, 10)
    resume = test.create_client(Trigger, "/franka_bridge/resume")
    diags: list = []
    test.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 100)
    targets = TargetLog(test, cfg.topics.target_pose)
    assert policy.trigger_configure() == TransitionCallbackReturn.SUCCESS, policy.last_error
    bridge.trigger_configure()
    bridge.trigger_activate()
    policy.trigger_activate()
    stack = Spinner(ros_context, [policy, bridge])  # the nodes under test on their own executor
    client = Spinner(ros_context, [test])
    try:
        assert wait_until(lambda: bridge.core.counters["clipped"] > 0), "no workspace clip happened"
        assert wait_until(lambda: any("outside workspace" in m for m in diag_messages(diags, DiagnosticStatus.WARN)))
        for mode in (RobotMode.REFLEX, RobotMode.USER_STOPPED):
            mode_pub.publish(UInt8(data=int(mode)))
            assert wait_until(lambda m=mode: bridge.core.robot_mode == m), f"{mode.name} never reached the bridge"
            time.sleep(0.1)
            assert stack.thread.is_alive(), f"the bridge's executor died on {mode.name}"
            assert bridge.core.stopped_reason == "robot_mode REFLEX"  # latched: the first stop's reason
            res = call(resume, Trigger.Request())
            assert res is not None, "~/resume not answered"
            assert not res.success and mode.name in res.message
        n_stopped = len(targets)
        assert wait_until(lambda: len(targets) > n_stopped + 5)  # stopped: holding, still streaming
        assert bridge.last_target.stopped and bridge.last_target.hold
        mode_pub.publish(UInt8(data=int(RobotMode.IDLE)))  # recovered (error recovery done)
        assert wait_until(lambda: bridge.core.robot_mode == RobotMode.IDLE)
        res = call(resume, Trigger.Request())
        assert res is not None and res.success, res
        assert wait_until(lambda: bridge.last_target is not None and not bridge.last_target.hold)
        assert stack.thread.is_alive()
    finally:
        stack.close()
        client.close()
        for n in (policy, bridge, test):
            n.destroy_node()
    errors = diag_messages(diags, DiagnosticStatus.ERROR)
    assert any("robot_mode REFLEX" in m for m in errors), errors
    assert_within_step_limits(
        targets.snapshot(), cfg.bridge.safety.max_step_m, cfg.bridge.safety.max_step_rad, cfg.bridge.stream_hz
    )


# ------------------------------------------------------------------------------------------ finding 2
def test_startup_outside_the_box_is_refused_and_every_target_respects_the_step_limits(ros_context):
    """From Franka's ready pose (above deploy_franka.yaml's box) the bridge publishes nothing and says
    why; inside the box the first target is the measured pose; narrowing the box walks the target
    in at the per-tick limits (no jump)."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from dppo_robot_ros.bridge_node import BridgeNode
    from dppo_robot_ros.compose import Spinner
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient

    cfg = deploy_franka_config()
    s = cfg.bridge.safety
    assert FRANKA_READY_POS[2] > s.workspace_max_m[2]  # the premise: the ready pose is above the box
    bridge = BridgeNode(config=cfg, context=ros_context)
    test = rclpy.create_node("test_steps", context=ros_context)
    feed = PoseFeed(test, cfg.topics.ee_pose, FRANKA_READY_POS)
    targets = TargetLog(test, cfg.topics.target_pose)
    diags: list = []
    test.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 100)
    params = AsyncParameterClient(test, "franka_bridge")
    bridge.trigger_configure()
    bridge.trigger_activate()
    stack, client = Spinner(ros_context, [bridge]), Spinner(ros_context, [test])
    try:
        assert wait_until(lambda: bridge.core.counters["refused"] > 20)
        time.sleep(0.1)
        assert len(targets) == 0, targets.snapshot()[:3]
        errors = diag_messages(diags, DiagnosticStatus.ERROR)
        assert any("outside the workspace box" in m and "publishing nothing" in m for m in errors), errors
        # the operator brings the arm into the box: the stream starts at the measured pose
        inside = np.array([0.45, 0.05, s.workspace_max_m[2] - 0.02])
        feed.position = inside
        assert wait_until(lambda: len(targets) > 10)
        first = targets.snapshot()[0]
        assert np.linalg.norm(first[1] - inside) <= s.max_step_m + 1e-9, first
        # narrow the box below the held target while active (allowed): the target walks down
        new_top = float(inside[2] - 30 * s.max_step_m)
        assert params.wait_for_services(5.0)
        box_max = [s.workspace_max_m[0], s.workspace_max_m[1], new_top]
        fut = params.set_parameters([Parameter("safety.workspace_max_m", Parameter.Type.DOUBLE_ARRAY, box_max)])
        assert wait_until(fut.done) and fut.result().results[0].successful, fut.result()
        assert wait_until(lambda: abs(targets.snapshot()[-1][1][2] - new_top) < 1e-9), targets.snapshot()[-1]
    finally:
        stack.close()
        client.close()
        for n in (bridge, test):
            n.destroy_node()
    got = targets.snapshot()
    assert len([t for t in got if t[1][2] < inside[2] - 1e-9]) >= 25  # it walked, over many ticks
    assert_within_step_limits(got, s.max_step_m, s.max_step_rad, cfg.bridge.stream_hz)


def test_bridge_publishes_nothing_until_active_and_nothing_in_dry_run(ros_context):
    import rclpy
    from dppo_robot_ros.bridge_node import BridgeNode
    from dppo_robot_ros.compose import Spinner
    from rclpy.parameter import Parameter
    from std_msgs.msg import Float64

    cfg = deploy_franka_config()
    inside = np.array([0.45, 0.0, 0.3])
    bridge = BridgeNode(config=cfg, context=ros_context)
    dry = BridgeNode(
        name="franka_bridge_dry",
        config=cfg,
        context=ros_context,
        parameter_overrides=[Parameter("dry_run", Parameter.Type.BOOL, True)],
    )
    test = rclpy.create_node("test_enable", context=ros_context)
    PoseFeed(test, cfg.topics.ee_pose, inside)
    targets = TargetLog(test, cfg.topics.target_pose)
    grip: list = []
    test.create_subscription(Float64, cfg.topics.gripper_command, grip.append, 10)
    stack, client = Spinner(ros_context, [bridge, dry]), Spinner(ros_context, [test])
    try:
        assert wait_until(lambda: bridge.core.newest_pose() is not None)
        time.sleep(0.3)
        assert len(targets) == 0  # unconfigured
        bridge.trigger_configure()
        dry.trigger_configure()
        time.sleep(0.3)
        assert len(targets) == 0  # inactive
        dry.trigger_activate()
        assert wait_until(lambda: dry.core.counters["ticks"] > 20)  # the dry-run bridge computes ...
        assert len(targets) == 0 and not grip  # ... and sends nothing
        bridge.trigger_activate()
        assert wait_until(lambda: len(targets) > 5)
        # only the real bridge has publishers to the robot
        assert test.count_publishers(cfg.topics.target_pose) == 1
        assert test.count_publishers(cfg.topics.gripper_command) == 1
        bridge.trigger_deactivate()
        time.sleep(0.1)
        n = len(targets)
        time.sleep(0.3)
        assert len(targets) == n  # inactive again: nothing
    finally:
        stack.close()
        client.close()
        for nd in (bridge, dry, test):
            nd.destroy_node()
    assert dry.published == 0 and dry.target_pub is None and dry.gripper_pub is None
    assert np.allclose(targets.snapshot()[0][1], inside)


# ------------------------------------------------------------------------------------------ parameters
def test_safety_parameters_through_the_parameter_services(ros_context):
    """Read and set through a real parameter client: the shipped ros__parameters file loads; while
    active a narrower limit is applied and a wider one refused; the descriptors' ranges hold."""
    import rclpy
    from dppo_robot_ros.bridge_node import BridgeNode
    from dppo_robot_ros.compose import Spinner
    from rclpy.parameter import Parameter, parameter_value_to_python
    from rclpy.parameter_client import AsyncParameterClient

    cfg = reach2d_config()  # defaults differ from the shipped file: loading it must show
    params_file = ROS_PKG / "config" / "params" / "franka_bridge_safety.yaml"
    import yaml

    want = yaml.safe_load(Path(params_file).read_text())["franka_bridge"]["ros__parameters"]["safety"]
    assert cfg.bridge.safety.max_step_m != want["max_step_m"]
    bridge = BridgeNode(config=cfg, context=ros_context)
    test = rclpy.create_node("test_params", context=ros_context)
    cli = AsyncParameterClient(test, "franka_bridge")
    stack, client = Spinner(ros_context, [bridge]), Spinner(ros_context, [test])
    names = ["safety.workspace_min_m", "safety.workspace_max_m", "safety.max_step_m", "safety.max_step_rad"]

    def get() -> dict:
        fut = cli.get_parameters(names)
        assert wait_until(fut.done)
        return {n: parameter_value_to_python(v) for n, v in zip(names, fut.result().values)}

    def set_(name: str, value) -> tuple[bool, str]:
        typ = Parameter.Type.DOUBLE_ARRAY if isinstance(value, list) else Parameter.Type.DOUBLE
        fut = cli.set_parameters([Parameter(name, typ, value)])
        assert wait_until(fut.done)
        r = fut.result().results[0]
        return r.successful, r.reason

    try:
        assert cli.wait_for_services(5.0)
        fut = cli.load_parameter_file(str(params_file))
        assert wait_until(fut.done) and all(r.successful for r in fut.result().results)
        got = get()
        assert got["safety.max_step_m"] == want["max_step_m"] and got["safety.max_step_rad"] == want["max_step_rad"]
        assert list(got["safety.workspace_min_m"]) == want["workspace_min_m"]
        assert list(got["safety.workspace_max_m"]) == want["workspace_max_m"]
        assert bridge.core.cfg.safety.max_step_m == want["max_step_m"]  # applied to the running core
        # descriptors: ranges and an empty box are refused in any state
        fut = cli.describe_parameters(["safety.max_step_m"])
        assert wait_until(fut.done)
        rng = fut.result().descriptors[0].floating_point_range[0]
        ok, _ = set_("safety.max_step_m", rng.to_value * 2)
        assert not ok
        ok, why = set_("safety.workspace_max_m", [0.2, 0.55, 0.4])  # max x below min x
        assert not ok and "empty" in why
        # inactive: widening is allowed
        ok, why = set_("safety.max_step_m", want["max_step_m"] * 2)
        assert ok, why
        bridge.trigger_configure()
        bridge.trigger_activate()
        # active: narrowing is applied, widening refused and the value kept
        ok, why = set_("safety.max_step_m", want["max_step_m"])
        assert ok, why
        assert bridge.core.cfg.safety.max_step_m == want["max_step_m"]
        ok, why = set_("safety.max_step_m", want["max_step_m"] * 1.5)
        assert not ok and "widens" in why and "max_step_m" in why, why
        ok, why = set_("safety.workspace_min_m", [want["workspace_min_m"][0] - 0.1, *want["workspace_min_m"][1:]])
        assert not ok and "widens" in why and "workspace_min_m x" in why, why
        ok, why = set_("safety.max_step_rad", want["max_step_rad"] * 2)
        assert not ok and "max_step_rad" in why
        got = get()
        assert got["safety.max_step_m"] == want["max_step_m"] and got["safety.max_step_rad"] == want["max_step_rad"]
        assert list(got["safety.workspace_min_m"]) == want["workspace_min_m"]
        assert bridge.core.cfg.safety.max_step_m == want["max_step_m"]
        bridge.trigger_deactivate()
        ok, why = set_("safety.max_step_rad", want["max_step_rad"] * 2)  # inactive again: allowed
        assert ok, why
    finally:
        stack.close()
        client.close()
        for n in (bridge, test):
            n.destroy_node()

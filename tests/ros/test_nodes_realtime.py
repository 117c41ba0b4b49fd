"""Policy node and bridge on the wall clock over Fast DDS: lifecycle, rate, faults, flood."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.ros.conftest import reach2d_config

pytestmark = pytest.mark.ros


class Feeder:
    """Test-side publishers of the reach2d inputs (ee pose + task state) from a wall-clock timer."""

    def __init__(self, node, cfg, hz: float = 30.0, value=None) -> None:
        from dppo_robot_ros.common import BEST_EFFORT, RELIABLE
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import JointState

        self.node, self.cfg = node, cfg
        self.PoseStamped, self.JointState = PoseStamped, JointState
        self.pose_pub = node.create_publisher(PoseStamped, cfg.topics.ee_pose, BEST_EFFORT)
        self.state_pub = node.create_publisher(JointState, cfg.topics.task_state, RELIABLE)
        self.value = np.array([0.0, -1.0, 0.0, 2.0]) if value is None else value
        self.sent = 0
        self.timer = node.create_timer(1.0 / hz, self.publish)

    def publish(self) -> None:
        from dppo_robot_ros import convert

        t = self.node.get_clock().now().nanoseconds * 1e-9
        v = self.value
        self.pose_pub.publish(
            convert.fill_pose(self.PoseStamped(), t, np.array([v[0], v[1], 0.0]), np.array([0, 0, 0, 1.0]))
        )
        names = ["pos/0", "pos/1", "goal_rel/0", "goal_rel/1"]
        self.state_pub.publish(convert.fill_joint_state(self.JointState(), t, names, v))
        self.sent += 1


def change_state(client_node, spinner_wait, transition_id: int) -> bool:
    from lifecycle_msgs.srv import ChangeState

    cli = client_node.create_client(ChangeState, "/dppo_policy/change_state")
    assert cli.wait_for_service(timeout_sec=5)
    req = ChangeState.Request()
    req.transition.id = transition_id
    fut = cli.call_async(req)
    deadline = time.monotonic() + 30
    while not fut.done() and time.monotonic() < deadline:
        time.sleep(0.01)
    return bool(fut.result().success)


def get_state(client_node) -> str:
    from lifecycle_msgs.srv import GetState

    cli = client_node.create_client(GetState, "/dppo_policy/get_state")
    assert cli.wait_for_service(timeout_sec=5)
    fut = cli.call_async(GetState.Request())
    while not fut.done():
        time.sleep(0.01)
    return fut.result().current_state.label


def test_lifecycle_transitions_and_chunk_rate(ros_context, reach2d_bundle):
    import rclpy
    from dppo_robot_ros.compose import Spinner
    from dppo_robot_ros.policy_node import PolicyNode
    from lifecycle_msgs.msg import Transition
    from std_msgs.msg import Header
    from trajectory_msgs.msg import JointTrajectory

    cfg = reach2d_config()
    cfg.policy.input_wait_s, cfg.policy.lockstep = 0.0, False
    policy = PolicyNode(config=cfg, bundle=str(reach2d_bundle), context=ros_context)
    test = rclpy.create_node("test_client", context=ros_context)
    chunks, ticks = [], []
    test.create_subscription(JointTrajectory, cfg.topics.chunk, lambda m: chunks.append((time.monotonic(), m)), 50)
    test.create_subscription(Header, cfg.topics.tick, lambda m: ticks.append((time.monotonic(), m.frame_id)), 50)
    feeder = Feeder(test, cfg)
    spin = Spinner(ros_context, [policy, test])
    try:
        assert get_state(test) == "unconfigured"
        assert change_state(test, spin, Transition.TRANSITION_CONFIGURE)
        assert get_state(test) == "inactive"
        time.sleep(0.3)
        assert not chunks  # inactive: no control
        assert change_state(test, spin, Transition.TRANSITION_ACTIVATE)
        time.sleep(2.2)
        assert change_state(test, spin, Transition.TRANSITION_DEACTIVATE)
        time.sleep(0.1)  # messages in flight land
        n_chunks, n_ticks = len(chunks), len(ticks)
        time.sleep(0.4)
        after = [m for _, m in chunks[n_chunks:] if m.points]
        assert not after  # deactivate holds: only the empty (cancel) chunk
        assert len(ticks) == n_ticks  # no control ticks while inactive
        assert ticks[n_ticks - 1][1] == "hold: deactivated" and not chunks[n_chunks - 1][1].points
        assert change_state(test, spin, Transition.TRANSITION_CLEANUP)
        assert get_state(test) == "unconfigured" and policy.runtime is None
    finally:
        spin.close()
        policy.destroy_node()
        test.destroy_node()
    # 10 Hz ticks, a chunk every Ta = 4 ticks; every point carries its execution time
    assert 18 <= n_ticks <= 26, n_ticks
    t = [w for w, m in chunks[:n_chunks] if m.points]
    assert 4 <= len(t) <= 7, len(t)
    assert np.median(np.diff(t)) == pytest.approx(0.4, abs=0.06), (np.diff(t), [f for _, f in ticks])
    m = chunks[0][1]
    assert len(m.points) == 8 and m.joint_names == ["vel/0", "vel/1"]
    assert [p.time_from_start.nanosec for p in m.points[:2]] == [100_000_000, 200_000_000]
    assert feeder.sent > 0


def test_spec_mismatch_fails_configure_naming_both(ros_context, reach2d_bundle):
    from dppo_robot_ros.policy_node import PolicyNode
    from rclpy.lifecycle import TransitionCallbackReturn

    from dppo_robot.deploy.config import ObsSource

    cfg = reach2d_config()
    cfg.policy.obs = [ObsSource("pos", "ee_pose", "position_xy"), ObsSource("goal_pos", "task_state", "values")]
    node = PolicyNode(config=cfg, bundle=str(reach2d_bundle), context=ros_context)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        err = node.last_error
        assert "['pos', 'goal_rel']" in err and "['pos', 'goal_pos']" in err, err
        assert "fresh_reach2d" in err and "topic mapping" in err
        assert node._state_machine.current_state[1] == "unconfigured"
    finally:
        node.destroy_node()


@pytest.mark.parametrize("bad", ["nan", "range"])
def test_bad_observations_publish_no_chunk_and_raise_a_diagnostic(ros_context, reach2d_bundle, bad):
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from dppo_robot_ros.compose import Spinner
    from dppo_robot_ros.policy_node import PolicyNode
    from trajectory_msgs.msg import JointTrajectory

    cfg = reach2d_config()
    cfg.policy.input_wait_s, cfg.policy.lockstep = 0.0, False
    policy = PolicyNode(config=cfg, bundle=str(reach2d_bundle), context=ros_context)
    test = rclpy.create_node("test_faults", context=ros_context)
    chunks, diags = [], []
    test.create_subscription(JointTrajectory, cfg.topics.chunk, chunks.append, 50)
    test.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 50)
    value = np.array([np.nan, -1.0, 0.0, 2.0]) if bad == "nan" else np.array([0.0, -1.0, 0.0, 50.0])
    Feeder(test, cfg, value=value)
    policy.trigger_configure()
    policy.trigger_activate()
    spin = Spinner(ros_context, [policy, test])
    try:
        time.sleep(1.0)
    finally:
        spin.close()
        policy.destroy_node()
        test.destroy_node()
    assert not [c for c in chunks if c.points]
    errors = [s for d in diags for s in d.status if s.level == DiagnosticStatus.ERROR]
    want = "non-finite" if bad == "nan" else "out of range"
    assert any(want in s.message for s in errors), [s.message for d in diags for s in d.status]
    # every hold is counted under its reason (numbers folded to '#') for deploy.json
    assert sum(policy.hold_reasons.values()) == policy.stats["holds"] > 0
    assert any(want in r and "#" in r for r in policy.hold_reasons), policy.hold_reasons


def test_camera_stop_makes_the_bridge_hold_within_two_control_periods(ros_context, camera_bundle):
    import rclpy
    from dppo_robot_ros import convert
    from dppo_robot_ros.bridge_node import BridgeNode
    from dppo_robot_ros.common import BEST_EFFORT, RELIABLE, SENSOR
    from dppo_robot_ros.compose import Spinner
    from dppo_robot_ros.policy_node import PolicyNode
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import Image, JointState

    from dppo_robot.deploy.config import ActionMapping, DeployConfig, ObsSource

    cfg = DeployConfig()
    cfg.topics.cameras = {"wrist": "/camera/wrist/color/image_raw"}
    cfg.policy.control_hz = 10.0
    cfg.policy.obs = [ObsSource("ee_pos", "ee_pose", "position"), ObsSource("gripper", "gripper", "position")]
    cfg.policy.max_age_s = {"wrist": 0.07}
    cfg.policy.obs_range_margin = 100.0
    cfg.action = ActionMapping(position_slice="ee_delta_pos", gripper_slice="gripper")
    cfg.bridge.safety.workspace_min_m, cfg.bridge.safety.workspace_max_m = [-5, -5, -5], [5, 5, 5]
    policy = PolicyNode(config=cfg, bundle=str(camera_bundle), context=ros_context)
    bridge = BridgeNode(config=cfg, context=ros_context)
    test = rclpy.create_node("test_camera", context=ros_context)
    pose_pub = test.create_publisher(PoseStamped, cfg.topics.ee_pose, BEST_EFFORT)
    grip_pub = test.create_publisher(JointState, cfg.topics.gripper, RELIABLE)
    img_pub = test.create_publisher(Image, cfg.topics.cameras["wrist"], SENSOR)
    camera_on = {"on": True, "last": 0.0}
    img = np.random.default_rng(0).integers(0, 255, (3, 48, 64), dtype=np.uint8)  # resized to 32x32 by the node

    def feed() -> None:
        t = test.get_clock().now().nanoseconds * 1e-9
        pose_pub.publish(convert.fill_pose(PoseStamped(), t, np.array([0.5, 0, 0.3]), np.array([0, 0, 0, 1.0])))
        grip_pub.publish(convert.fill_joint_state(JointState(), t, ["f1", "f2"], np.array([0.02, 0.02])))
        if camera_on["on"]:
            img_pub.publish(convert.fill_image(Image(), t, img))
            camera_on["last"] = time.monotonic()

    test.create_timer(1 / 30, feed)
    holds: list[float] = []
    orig_tick = bridge._tick

    def watched_tick() -> None:
        orig_tick()
        lt = bridge.last_target
        if lt is not None and lt.hold and not camera_on["on"] and not holds:
            holds.append(time.monotonic())

    from rclpy.lifecycle import TransitionCallbackReturn

    assert bridge.trigger_configure() == TransitionCallbackReturn.SUCCESS
    bridge.trigger_activate()
    bridge.timer.callback = watched_tick
    assert policy.trigger_configure() == TransitionCallbackReturn.SUCCESS, policy.last_error
    policy.trigger_activate()
    spin = Spinner(ros_context, [policy, bridge, test])
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and policy.stats["chunks"] < 2:
            time.sleep(0.05)
        time.sleep(0.3)
        assert bridge.last_target is not None and not bridge.last_target.hold
        camera_on["on"] = False
        time.sleep(0.6)
    finally:
        spin.close()
        for n in (policy, bridge, test):
            n.destroy_node()
    assert holds, "the bridge never held after the camera stopped"
    assert holds[0] - camera_on["last"] <= 2 * 0.1 + 0.03  # two control periods (+ a stream tick of slack)


def test_input_flood_at_10x_rate_leaves_latency_bounded(ros_context, reach2d_bundle):
    import rclpy
    from dppo_robot_ros.compose import Spinner
    from dppo_robot_ros.policy_node import PolicyNode

    cfg = reach2d_config()
    cfg.policy.input_wait_s, cfg.policy.lockstep = 0.0, False
    results = {}
    for hz in (30.0, 300.0):  # nominal, then 10x
        policy = PolicyNode(name=f"dppo_policy_{int(hz)}", config=cfg, bundle=str(reach2d_bundle), context=ros_context)
        test = rclpy.create_node(f"flood_{int(hz)}", context=ros_context)
        feeder = Feeder(test, cfg, hz=hz)
        policy.trigger_configure()
        policy.trigger_activate()
        spin = Spinner(ros_context, [policy, test])
        time.sleep(2.0)
        spin.close()
        lat = np.array(policy.obs_to_chunk_ms)
        wall = np.diff(np.array(policy.tick_wall))
        results[hz] = (lat, wall, feeder.sent)
        policy.destroy_node()
        test.destroy_node()
    lat, wall, sent = results[300.0]
    assert sent > 200  # the flood really ran
    assert len(lat) >= 3 and np.percentile(lat, 99) < 50.0, lat  # obs stamp -> chunk published, ms
    assert np.percentile(np.abs(wall - 0.1), 99) < 0.05, wall

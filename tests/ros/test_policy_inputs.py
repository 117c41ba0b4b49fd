"""The policy node's inputs as franka_ros2 publishes them, over real Fast DDS: a 1 kHz pose fills a
To = 2 history (buffers sized by time), Franka's gripper convention lands in the trained range."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.ros.conftest import ROS_PKG, reach2d_config
from tests.ros.test_bridge_safety import wait_until

pytestmark = pytest.mark.ros

LIFT_BUNDLE = Path(__file__).resolve().parents[2] / "policies" / "lift_dppo"


class KilohertzPose:
    """PoseStamped stamped every 1 ms of the ROS clock (franka_robot_state_broadcaster's rate),
    published from a thread; a late thread catches up, so the stamps stay 1 ms apart."""

    def __init__(self, node, topic: str, position) -> None:
        from dppo_robot_ros.common import BEST_EFFORT_PUB
        from geometry_msgs.msg import PoseStamped

        self.node, self.PoseStamped, self.position = node, PoseStamped, np.asarray(position, float)
        self.pub = node.create_publisher(PoseStamped, topic, BEST_EFFORT_PUB)
        self.sent = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _run(self) -> None:
        from dppo_robot_ros import convert

        t = self._now()
        while not self._stop.is_set():
            if self._now() < t:
                time.sleep(0.0003)
                continue
            self.pub.publish(convert.fill_pose(self.PoseStamped(), t, self.position, np.array([0, 0, 0, 1.0])))
            self.sent += 1
            t += 0.001

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=2)


def test_history_buffers_hold_to_steps_of_a_1khz_pose(ros_context, reach2d_bundle):
    """To = 2 at 10 Hz needs 0.1 s of a 1 kHz pose (100 samples): the policy node makes chunks."""
    import rclpy
    from dppo_robot_ros import convert
    from dppo_robot_ros.compose import Spinner
    from dppo_robot_ros.policy_node import PolicyNode
    from rclpy.lifecycle import TransitionCallbackReturn
    from sensor_msgs.msg import JointState

    cfg = reach2d_config()
    cfg.policy.input_wait_s, cfg.policy.lockstep = 0.0, False
    policy = PolicyNode(config=cfg, bundle=str(reach2d_bundle), context=ros_context)
    assert policy.trigger_configure() == TransitionCallbackReturn.SUCCESS, policy.last_error
    assert policy.runtime.manifest.cond_steps == 2
    test = rclpy.create_node("test_1khz", context=ros_context)
    state_pub = test.create_publisher(JointState, cfg.topics.task_state, 10)

    def state() -> None:
        t = test.get_clock().now().nanoseconds * 1e-9
        names = ["pos/0", "pos/1", "goal_rel/0", "goal_rel/1"]
        state_pub.publish(convert.fill_joint_state(JointState(), t, names, np.array([0.1, -0.2, 0.5, 0.5])))

    test.create_timer(1 / 30, state)
    policy.trigger_activate()
    stack, client = Spinner(ros_context, [policy]), Spinner(ros_context, [test])
    pose = KilohertzPose(test, cfg.topics.ee_pose, [0.1, -0.2, 0.0])
    try:
        wait_until(lambda: policy.stats["chunks"] >= 2, 6.0)
        buf = policy.core.builder.buffers["ee_pose"]
        kept, span = len(buf), buf.newest.stamp_s - buf._stamps[0]
    finally:
        pose.close()
        stack.close()
        client.close()
        for n in (policy, test):
            n.destroy_node()
    # the window the buffer keeps is the history plus the staleness limit (not a sample count)
    assert span >= (2 - 1) / cfg.policy.control_hz, (kept, span)
    assert kept > 64, kept  # more than the old fixed 64 samples: the history would not have fit
    # (a tick before the pose has run for To - 1 periods holds: that is right)
    assert policy.stats["chunks"] >= 2, dict(policy.hold_reasons)


@pytest.mark.skipif(not (LIFT_BUNDLE / "bundle.yaml").is_file(), reason="policies/lift_dppo is not in this checkout")
def test_franka_gripper_joint_states_land_in_the_trained_range(ros_context):
    """franka_gripper publishes both fingers as +width/2; through deploy_franka.yaml's mapping the
    lift bundle's robot0_gripper_qpos (robosuite: second finger negative) is inside its trained range."""
    import rclpy
    from dppo_robot_ros import convert
    from dppo_robot_ros.common import BEST_EFFORT_PUB
    from dppo_robot_ros.compose import Spinner
    from dppo_robot_ros.policy_node import PolicyNode
    from geometry_msgs.msg import PoseStamped
    from rclpy.lifecycle import TransitionCallbackReturn
    from sensor_msgs.msg import JointState

    from dppo_robot.deploy.config import DeployConfig
    from dppo_robot.typed_config import load_yaml

    cfg = load_yaml(DeployConfig, ROS_PKG / "config" / "deploy_franka.yaml")
    policy = PolicyNode(config=cfg, bundle=str(LIFT_BUNDLE), context=ros_context)
    assert policy.trigger_configure() == TransitionCallbackReturn.SUCCESS, policy.last_error
    m = policy.runtime.manifest
    lo, hi = np.asarray(m.normalization.obs_min), np.asarray(m.normalization.obs_max)
    spec = {s.name: (s.start, s.start + s.size) for s in m.obs_spec}
    mid = (lo + hi) / 2
    g0, g1 = spec["robot0_gripper_qpos"]
    width = float(mid[g0] - mid[g0 + 1])  # robosuite: q1 - q2 is the opening
    test = rclpy.create_node("test_gripper_sign", context=ros_context)
    pose_pub = test.create_publisher(PoseStamped, cfg.topics.ee_pose, BEST_EFFORT_PUB)
    grip_pub = test.create_publisher(JointState, cfg.topics.gripper, 10)
    state_pub = test.create_publisher(JointState, cfg.topics.task_state, 10)
    stamps: list[float] = []

    def feed() -> None:
        t = test.get_clock().now().nanoseconds * 1e-9
        p, q = spec["robot0_eef_pos"], spec["robot0_eef_quat"]
        pose_pub.publish(convert.fill_pose(PoseStamped(), t, mid[p[0] : p[1]], mid[q[0] : q[1]]))
        # Franka's convention: both finger joints at +width/2
        fingers = ["fr3_finger_joint1", "fr3_finger_joint2"]
        grip_pub.publish(convert.fill_joint_state(JointState(), t, fingers, np.array([width / 2, width / 2])))
        names, vals = [], []
        for o in cfg.policy.obs:
            if o.source == "task_state":
                a, b = spec[o.name]
                names += [f"{o.name}/{i}" for i in range(b - a)]
                vals += list(mid[a:b])
        state_pub.publish(convert.fill_joint_state(JointState(), t, names, np.array(vals)))
        stamps.append(t)

    test.create_timer(1 / 30, feed)
    stack, client = Spinner(ros_context, [policy]), Spinner(ros_context, [test])
    try:
        ready = wait_until(lambda: all(len(b) >= 5 for b in policy.core.builder.buffers.values()), 5.0)
    finally:
        stack.close()
        client.close()
    try:
        assert ready, {c: len(b) for c, b in policy.core.builder.buffers.items()}
        newest = min(b.newest.stamp_s for b in policy.core.builder.buffers.values())
        res = policy.core.builder.assemble(newest)
    finally:
        for n in (policy, test):
            n.destroy_node()
    assert res.ok, res.reason
    got = res.obs[-1, g0:g1]
    assert got[0] > 0 > got[1]  # robosuite's signs
    assert np.all(got >= lo[g0:g1] - 1e-6) and np.all(got <= hi[g0:g1] + 1e-6), (got, lo[g0:g1], hi[g0:g1])

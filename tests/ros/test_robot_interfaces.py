"""Interfaces to the robot-side software: camera QoS as realsense-ros readers expect, the robot-mode
relay without franka_msgs, the gripper goal adapter's wiring."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tests.ros.test_bridge_safety import wait_until

pytestmark = pytest.mark.ros


def test_camera_node_reaches_default_reliable_subscribers(ros_context, tmp_path):
    """realsense-ros publishes image and camera_info reliable, so tools subscribe reliable: our camera
    node must reach a default-QoS (reliable) subscriber, and still a best-effort one."""
    pytest.importorskip("pyrealsense2")
    import rclpy
    from dppo_robot_ros.camera_node import CameraNode
    from dppo_robot_ros.common import SENSOR
    from dppo_robot_ros.compose import Spinner
    from sensor_msgs.msg import CameraInfo, Image

    from dppo_robot.deploy.camera import synthesize_recording
    from dppo_robot.deploy.config import CameraConfig, DeployConfig

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (24, 32, 3), dtype=np.uint8) for _ in range(60)]
    rec = synthesize_recording(tmp_path / "rec.db3", frames, fps=30)
    cam = CameraConfig(name="front", width=32, height=24, fps=30, recording=str(rec), topic_prefix="/camera/camera")
    test = rclpy.create_node("test_camera_qos", context=ros_context)
    got = {"image": 0, "info": 0, "image_best_effort": 0}

    def count(key):
        def cb(_msg) -> None:
            got[key] += 1

        return cb

    test.create_subscription(Image, "/camera/camera/color/image_raw", count("image"), 10)  # reliable
    test.create_subscription(CameraInfo, "/camera/camera/color/camera_info", count("info"), 10)  # reliable
    test.create_subscription(Image, "/camera/camera/color/image_raw", count("image_best_effort"), SENSOR)
    client = Spinner(ros_context, [test])
    node = CameraNode(config=DeployConfig(cameras=[cam]), camera=cam, context=ros_context)
    try:
        wait_until(lambda: min(got.values()) >= 5 or not node.thread.is_alive(), 10.0)
    finally:
        client.close()
        node.destroy_node()
        test.destroy_node()
    assert node.published > 0
    assert got["image"] > 0 and got["info"] > 0, got
    assert got["image_best_effort"] > 0, got


def test_robot_mode_relay_says_clearly_when_franka_msgs_is_missing(capsys):
    from dppo_robot_ros import robot_mode_relay

    if robot_mode_relay.HAVE_FRANKA_MSGS:
        pytest.skip("franka_msgs is installed here")
    with pytest.raises(SystemExit) as e:
        robot_mode_relay.main([])
    assert e.value.code == 2
    assert "franka_msgs is not importable" in capsys.readouterr().err
    with pytest.raises(RuntimeError, match="franka_msgs"):
        robot_mode_relay.RobotModeRelay()


class StandInActionClient:
    """The action server side is the hardware boundary (franka_gripper; franka_msgs and every other
    action package are missing here): this answers like rclpy's ActionClient, with real rclpy Futures."""

    def __init__(self, accept: list[bool], results: list[tuple[bool, str]]) -> None:
        self.ready, self.accept, self.results, self.goals = False, accept, results, []

    def server_is_ready(self) -> bool:
        return self.ready

    def send_goal_async(self, goal):
        from rclpy.task import Future

        self.goals.append(goal)
        accepted = self.accept.pop(0)
        ok, err = self.results.pop(0) if accepted else (False, "")

        result = SimpleNamespace(result=SimpleNamespace(success=ok, error=err))

        def get_result_async():
            f = Future()
            f.set_result(result)
            return f

        f = Future()
        f.set_result(SimpleNamespace(accepted=accepted, get_result_async=get_result_async))
        return f

    def destroy(self) -> None:
        pass


def test_gripper_goal_adapter_waits_sends_retries_and_reports(ros_context):
    """ActionGoalClient (the bridge's generic rclpy side) with GripperGoals: no goal before the server
    is up, a rejected and a failed goal are retried, the success ends the delivery."""
    import rclpy
    from dppo_robot_ros.bridge_node import ActionGoalClient

    from dppo_robot.deploy.config import GripperConfig
    from dppo_robot.deploy.gripper import GripperGoals

    node = rclpy.create_node("test_gripper_adapter", context=ros_context)
    goals = GripperGoals(GripperConfig(server_timeout_s=30.0, retries=2))
    close = StandInActionClient(accept=[False, True, True], results=[(False, "object not grasped"), (True, "")])
    adapter = ActionGoalClient(
        node, goals, {True: close, False: StandInActionClient([], [])}, lambda c: ("goal", c), None
    )
    adapter.read_result = lambda r: (bool(r.success), str(r.error))
    try:
        goals.command(True, node.get_clock().now().nanoseconds * 1e-9)
        for _ in range(3):
            adapter.poll()
        assert close.goals == []  # the server is not up: nothing sent
        close.ready = True
        for _ in range(6):
            adapter.poll()
    finally:
        node.destroy_node()
    assert close.goals == [("goal", True)] * 3
    assert goals.counters["sent"] == 3 and goals.counters["succeeded"] == 1 and goals.counters["retried"] == 2
    assert goals.done is True and goals.status["gripper.last_error"] == "none"

"""The joint-space path over real Fast DDS: the bridge's IK output (JointTrajectory with the arm's
joint names) drives the simulated Franka through a whole Lift episode of a shipped bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.ros.conftest import ROS_PKG

pytestmark = pytest.mark.ros

ROOT = Path(__file__).resolve().parents[2]
LIFT_BUNDLE = ROOT / "policies" / "lift_dppo"


def test_joint_trajectory_path_runs_a_whole_episode(ros_context):
    if not (LIFT_BUNDLE / "policy.onnx").is_file():
        pytest.skip(f"{LIFT_BUNDLE} is not in this checkout")
    from dppo_robot_ros.common import TARGET
    from dppo_robot_ros.compose import SimStack
    from trajectory_msgs.msg import JointTrajectory

    from dppo_robot.deploy.config import DeployConfig
    from dppo_robot.deploy.ik import PandaIK
    from dppo_robot.typed_config import load_yaml

    cfg = load_yaml(DeployConfig, ROS_PKG / "config" / "sim_lift_joints.yaml")
    assert cfg.bridge.output == "joint_trajectory" and cfg.sim.follow == "joints"
    cfg.sim.max_episode_steps = 60  # a whole (short) episode: reset to the step limit
    stack = SimStack(cfg, str(LIFT_BUNDLE), ros_context)
    got: list = []
    stack.sim.create_subscription(JointTrajectory, cfg.topics.joint_trajectory, got.append, TARGET)
    try:
        (out,) = stack.run(1)
        timeouts = dict(stack.sim.timeouts)
        published = stack.bridge.published
    finally:
        stack.close()
    assert out.length == 60 and not out.aborted
    assert timeouts == {"tick": 0, "target": 0}  # every step's target came as joint positions
    assert published > 0 and got
    names = {tuple(m.joint_names) for m in got}
    assert names == {tuple(f"panda_joint{i}" for i in range(1, 8))}
    # the joints commanded reach the targets the bridge streamed: FK on the IK's model
    ik = PandaIK(cfg.robot.base_pos_m, cfg.robot.base_quat_xyzw)
    q = np.array(got[-1].points[0].positions)
    pos, _ = ik.fk(q)
    assert np.linalg.norm(pos - stack.bridge.last_target.position) < cfg.robot.ik_max_residual_m

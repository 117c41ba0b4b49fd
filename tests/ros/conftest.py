"""ROS 2 integration fixtures: the package on sys.path (no colcon), one DDS domain per process, bundles."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROS_PKG = Path(__file__).resolve().parents[2] / "ros2_ws" / "src" / "dppo_robot"
if str(ROS_PKG) not in sys.path:
    sys.path.insert(0, str(ROS_PKG))

REACH2D_RANGE = ([-1.5, -1.5, -1.5, -0.5], [1.5, 1.5, 1.5, 3.0])


@pytest.fixture
def ros_context():
    """A fresh rclpy context on a domain of its own (parallel workers and other runs do not meet)."""
    pytest.importorskip("rclpy")
    from dppo_robot_ros.compose import new_context

    ctx = new_context(1 + (os.getpid() * 7 + id(object())) % 200)
    yield ctx
    ctx.try_shutdown()


@pytest.fixture(scope="session")
def reach2d_bundle(tmp_path_factory) -> Path:
    from dppo_robot.deploy.fresh_bundle import fresh_task_bundle

    return fresh_task_bundle(tmp_path_factory.mktemp("ros_bundles") / "reach2d", obs_range=REACH2D_RANGE)


@pytest.fixture(scope="session")
def camera_bundle(tmp_path_factory) -> Path:
    """tests.conftest's small ViT bundle: obs ee_pos 3 + gripper 2, camera 'wrist' 32x32, actions 2 + 1."""
    from tests.conftest import export_small

    out, *_ = export_small(tmp_path_factory.mktemp("ros_cam"), "vit")
    return out


def reach2d_config():
    from dppo_robot.deploy.config import DeployConfig
    from dppo_robot.typed_config import load_yaml

    return load_yaml(DeployConfig, ROS_PKG / "config" / "sim_reach2d.yaml")

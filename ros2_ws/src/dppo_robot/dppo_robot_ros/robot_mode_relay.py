"""Robot-mode relay: franka_msgs/FrankaRobotState.robot_mode -> std_msgs/UInt8 for the bridge.

franka_ros2 publishes the robot mode only inside FrankaRobotState on
topics.robot_state (/franka_robot_state_broadcaster/robot_state, reliable, 1 kHz). The bridge
reads std_msgs/UInt8 on topics.robot_mode (/franka/robot_mode) so that it needs no franka_msgs.
This node republishes the mode on every change and at `heartbeat_hz` otherwise (a bridge started
later learns the mode within a heartbeat). It needs franka_msgs: where that is not importable
(any machine without franka_ros2), `robot_mode_relay` exits with status 2 and says so; the
bridge then never sees REFLEX / USER_STOPPED (its diagnostics report robot_mode_publishers 0).
Parameters: config_file (topics.robot_state, topics.robot_mode), heartbeat_hz (10).
"""

from __future__ import annotations

import sys

from rclpy.node import Node
from std_msgs.msg import UInt8

from dppo_robot.deploy.config import DeployConfig
from dppo_robot_ros.common import RELIABLE, declare_config, spin_main

try:
    from franka_msgs.msg import FrankaRobotState  # type: ignore[import-not-found]

    HAVE_FRANKA_MSGS = True
except ImportError:
    FrankaRobotState = None
    HAVE_FRANKA_MSGS = False

NO_FRANKA_MSGS = (
    "robot_mode_relay: franka_msgs is not importable (install franka_ros2 and source its workspace); "
    "nothing is relayed, so franka_bridge will not see REFLEX / USER_STOPPED"
)


class RobotModeRelay(Node):
    """Subscribes `state_type` (default FrankaRobotState) on topics.robot_state, publishes its robot_mode."""

    def __init__(
        self, name: str = "robot_mode_relay", config: DeployConfig | None = None, state_type=None, **kw
    ) -> None:
        state_type = state_type or FrankaRobotState
        if state_type is None:
            raise RuntimeError(NO_FRANKA_MSGS)
        super().__init__(name, **kw)
        cfg, _ = declare_config(self, config)
        self.heartbeat_s = 1.0 / float(self.declare_parameter("heartbeat_hz", 10.0).value)
        self.pub = self.create_publisher(UInt8, cfg.topics.robot_mode, RELIABLE)
        self.create_subscription(state_type, cfg.topics.robot_state, self._on_state, RELIABLE)
        self.mode: int | None = None
        self.relayed = 0
        self._last_s = -1.0

    def _on_state(self, msg) -> None:
        mode = int(msg.robot_mode)
        now = self.get_clock().now().nanoseconds * 1e-9
        if mode != self.mode or now - self._last_s >= self.heartbeat_s:
            self.mode, self._last_s = mode, now
            self.pub.publish(UInt8(data=mode))
            self.relayed += 1


def main(args: list[str] | None = None) -> None:
    if not HAVE_FRANKA_MSGS:
        print(NO_FRANKA_MSGS, file=sys.stderr)
        sys.exit(2)
    spin_main(RobotModeRelay, args)

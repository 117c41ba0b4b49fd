"""Shared node helpers: config loading, QoS profiles, timers, diagnostics, the spin-until-Ctrl-C main."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

from dppo_robot.deploy.config import DeployConfig
from dppo_robot.typed_config import load_yaml

# franka_ros2 publishes its convenience topics best-effort, depth 1: a best-effort reader takes both.
# Readers keep 10 so that samples arriving together are not overwritten before the callback runs.
BEST_EFFORT = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
BEST_EFFORT_PUB = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
SENSOR = qos_profile_sensor_data
RELIABLE = QoSProfile(depth=10)
TARGET = QoSProfile(depth=1)  # Cartesian impedance controllers subscribe with depth 1
# realsense-ros publishes image and camera_info reliable: so does camera_node (readers of either kind match)
CAMERA = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)


def declare_config(node: Node, config: DeployConfig | None) -> tuple[DeployConfig, str]:
    """The node's DeployConfig: the object given, else the YAML named by parameter config_file."""
    if not node.has_parameter("config_file"):
        node.declare_parameter("config_file", "")
    path = node.get_parameter("config_file").value
    if config is not None:
        return config, path or "<config object>"
    if not path:
        return DeployConfig(), "<defaults>"
    return load_yaml(DeployConfig, Path(path)), path


def steady_timer(node: Node, period_s: float, cb: Callable[[], None]):
    """A timer on the steady clock (diagnostics keep their wall rate under simulated time)."""
    return node.create_timer(period_s, cb, clock=Clock(clock_type=ClockType.STEADY_TIME))


class GridTimer:
    """A periodic timer whose ticks fall on multiples of the period of the node's clock.

    rcl timers tick at creation time + k * period; a one-shot timer first waits for the next
    grid time, then the periodic timer is created there. Under simulated time the ticks then
    land exactly on the simulation's control steps.
    """

    def __init__(self, node: Node, hz: float, cb: Callable[[], None]) -> None:
        self.node, self.period, self.cb = node, 1.0 / hz, cb
        self.timer = None
        now = node.get_clock().now().nanoseconds * 1e-9
        nxt = math.ceil(now / self.period - 1e-6) * self.period
        if nxt - now < 1e-6:
            self._start()
        else:
            self._oneshot = node.create_timer(nxt - now, self._first)

    def _start(self) -> None:
        self.timer = self.node.create_timer(self.period, self.cb)

    def _first(self) -> None:
        self.node.destroy_timer(self._oneshot)
        self._oneshot = None
        self._start()
        self.cb()

    def destroy(self) -> None:
        for t in (self.timer, getattr(self, "_oneshot", None)):
            if t is not None:
                self.node.destroy_timer(t)
        self.timer = self._oneshot = None


def publish_diagnostic(node: Node, pub, status, values: dict) -> None:
    """Publish one DiagnosticStatus (values as KeyValue strings) stamped with the node's clock."""
    from diagnostic_msgs.msg import DiagnosticArray, KeyValue

    status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
    arr = DiagnosticArray(status=[status])
    arr.header.stamp = node.get_clock().now().to_msg()
    pub.publish(arr)


def spin_main(make_node: Callable[[], Node], args: list[str] | None = None) -> None:
    """Console-script main: init, spin one node until Ctrl-C, clean up."""
    import rclpy

    rclpy.init(args=args)
    node = make_node()
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()

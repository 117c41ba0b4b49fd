"""The same node classes composed on one rclpy executor (no `ros2 launch` needed).

`SimStack`: policy + bridge + simulated Franka on simulated time, for `dppo-robot deploy --sim`,
the integration tests and the node benchmark. Messages still travel over Fast DDS.
"""

from __future__ import annotations

import os
import threading

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from dppo_robot.bundle.manifest import read_manifest
from dppo_robot.deploy.config import DeployConfig
from dppo_robot.deploy.sim_franka import EpisodeOutcome
from dppo_robot_ros.bridge_node import BridgeNode
from dppo_robot_ros.policy_node import PolicyNode
from dppo_robot_ros.sim_franka_node import SimFrankaNode


def new_context(domain_id: int | None = None) -> Context:
    """An initialised rclpy context on its own DDS domain (default: ROS_DOMAIN_ID or 0)."""
    ctx = Context()
    if domain_id is None:
        domain_id = int(os.environ.get("ROS_DOMAIN_ID", "0"))
    rclpy.init(context=ctx, domain_id=domain_id)
    return ctx


class Spinner:
    """An executor spinning its nodes in a background thread."""

    def __init__(self, context: Context, nodes: list) -> None:
        self.executor = SingleThreadedExecutor(context=context)
        for n in nodes:
            self.executor.add_node(n)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set() and self.executor.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def add(self, node) -> None:
        self.executor.add_node(node)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        self.executor.shutdown(timeout_sec=1)


class SimStack:
    """Policy node, bridge and simulated Franka on one executor, simulated time."""

    def __init__(self, cfg: DeployConfig, bundle: str, context: Context, activate: bool = True) -> None:
        m = read_manifest(bundle)
        sim_time = [Parameter("use_sim_time", Parameter.Type.BOOL, True)]
        self.context = context
        self.sim = SimFrankaNode(config=cfg, cond_steps=m.cond_steps, context=context)
        self.policy = PolicyNode(config=cfg, bundle=str(bundle), context=context, parameter_overrides=sim_time)
        self.bridge = BridgeNode(
            config=cfg,
            action_slices=[(s.name, s.size) for s in m.action_spec],
            context=context,
            parameter_overrides=sim_time,
        )
        self.nodes = [self.sim, self.policy, self.bridge]
        self.spinner: Spinner | None = None
        if activate:
            self.activate()

    def activate(self) -> None:
        from rclpy.lifecycle import TransitionCallbackReturn

        if self.policy.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise RuntimeError(f"policy node failed to configure: {self.policy.last_error}")
        # the bridge (lifecycle) publishes nothing until active
        if self.bridge.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise RuntimeError("bridge node failed to configure")
        self.bridge.trigger_activate()
        self.policy.trigger_activate()
        self.spinner = Spinner(self.context, self.nodes)

    def run(self, episodes: int, stop: threading.Event | None = None, on_episode=None) -> list[EpisodeOutcome]:
        return self.sim.run_episodes(episodes, stop, on_episode)

    def close(self) -> None:
        if self.spinner is not None:
            self.spinner.close()
        for n in self.nodes:
            n.destroy_node()
        self.sim.sim.close()

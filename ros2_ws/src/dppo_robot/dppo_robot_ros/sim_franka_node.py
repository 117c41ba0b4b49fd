"""The simulated Franka node: a registered task stepped in lockstep with simulated time.

It owns /clock (rosgraph_msgs/Clock; every other node runs with use_sim_time) and speaks the
topics the real stack uses: the end-effector pose (PoseStamped, best effort), the gripper
(JointState of the fingers), part poses (PoseArray), the task state (JointState "<slice>/<i>"
of every obs slice), the arm's joint_states (robot.joint_names, robosuite tasks), camera images
when the task has cameras (Image rgb8 on topics.cameras), episode outcomes (std_msgs/String
JSON). It follows the bridge's target_pose, or with sim.follow joints the JointTrajectory on
topics.joint_trajectory (its last point, due at header.stamp + time_from_start), and the
gripper command.

Lockstep, per control step k at t_k = k / control_hz (integer nanoseconds):
1. the state at t_k is published (stamped t_k), then the clock is set to t_k; the sim waits
   for the policy's tick stamped t_k (the chain ran or decided not to);
2. the clock is set to t_{k+1} - bridge.latency_s; the sim waits for the bridge's target meant
   for t_{k+1} and steps the task towards it. Waits time out after sim.lockstep_timeout_s
   (wall) and the robot then stays put, so a dead stack never blocks the simulation.
Between episodes the clock jumps ahead by at least a second plus the history length; the
first state is published at the To grid times before the episode starts (the robot at rest).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable

import numpy as np
from geometry_msgs.msg import Pose, PoseArray, PoseStamped
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64, Header, String
from trajectory_msgs.msg import JointTrajectory

from dppo_robot.deploy.action_map import PoseTarget
from dppo_robot.deploy.config import DeployConfig
from dppo_robot.deploy.sim_franka import EpisodeOutcome, SimFranka, SimState
from dppo_robot_ros import convert
from dppo_robot_ros.common import BEST_EFFORT, RELIABLE, SENSOR, TARGET, declare_config


class SimFrankaNode(Node):
    def __init__(self, name: str = "sim_franka", config: DeployConfig | None = None, cond_steps: int = 2, **kw) -> None:
        super().__init__(name, **kw)
        cfg, _ = declare_config(self, config)
        self.cfg = cfg
        self.sim = SimFranka(cfg.sim, cfg.action)
        self.sim.check_lockstep(cfg.policy)
        self.cond_steps = cond_steps
        self.dt_ns = round(1e9 / self.sim.task.control_hz)
        self.lead_ns = round(cfg.bridge.latency_s * 1e9)
        if not 0 < self.lead_ns < self.dt_ns:
            raise ValueError(
                f"lockstep needs 0 < bridge.latency_s < 1/control_hz; got {cfg.bridge.latency_s} s at "
                f"{self.sim.task.control_hz} Hz"
            )
        t = cfg.topics
        self.clock_pub = self.create_publisher(Clock, "/clock", RELIABLE)
        self.pose_pub = self.create_publisher(PoseStamped, t.ee_pose, BEST_EFFORT)  # depth 10: samples go out in bursts
        self.gripper_pub = self.create_publisher(JointState, t.gripper, RELIABLE)
        self.parts_pub = self.create_publisher(PoseArray, t.part_poses, RELIABLE)
        self.state_pub = self.create_publisher(JointState, t.task_state, RELIABLE)
        self.episode_pub = self.create_publisher(String, t.episode, RELIABLE)
        self.image_pubs = {c: self.create_publisher(Image, topic, SENSOR) for c, topic in t.cameras.items()}
        self.joints_pub = self.create_publisher(JointState, t.joint_states, RELIABLE)
        if cfg.sim.follow == "joints":
            self.create_subscription(JointTrajectory, t.joint_trajectory, self._on_joint_target, TARGET)
        else:
            self.create_subscription(PoseStamped, t.target_pose, self._on_target, TARGET)
        self.create_subscription(Float64, t.gripper_command, self._on_gripper, RELIABLE)
        self.create_subscription(Header, t.tick, self._on_tick, RELIABLE)
        self._cv = threading.Condition()
        self._target: tuple[int, PoseTarget | np.ndarray] | None = None  # (due ns, pose or arm joints)
        self._gripper: float | None = None
        self._tick_ns = -1
        self._tick_held = False  # the newest policy tick said "hold: ..." (no chunk: the stack holds)
        self.now_ns = 0
        self.grid_ns = 0
        self.timeouts = {"tick": 0, "target": 0}
        self.outcomes: list[EpisodeOutcome] = []

    # ---------------------------------------------------------------- inputs
    def _on_target(self, msg: PoseStamped) -> None:
        s = convert.pose_sample(msg)
        ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self._cv:
            self._target = (ns, PoseTarget(s.values["position"], s.values["quat_xyzw"], self._gripper))
            self._cv.notify_all()

    def _on_joint_target(self, msg: JointTrajectory) -> None:
        try:
            stamp, times, q = convert.joint_trajectory_positions(msg, self.cfg.robot.joint_names)
        except ValueError as e:
            self.get_logger().error(f"joint target ignored: {e}")
            return
        if not len(q):
            return
        ns = round((stamp + times[-1]) * 1e9)
        with self._cv:  # forward kinematics runs in the loop, between env steps
            self._target = (ns, q[-1].copy())
            self._cv.notify_all()

    def _on_gripper(self, msg: Float64) -> None:
        self._gripper = float(msg.data)

    def _on_tick(self, msg: Header) -> None:
        with self._cv:
            ns = msg.stamp.sec * 1_000_000_000 + msg.stamp.nanosec
            if ns >= self._tick_ns:
                self._tick_held = msg.frame_id.startswith("hold")
            self._tick_ns = max(self._tick_ns, ns)
            self._cv.notify_all()

    # ---------------------------------------------------------------- outputs
    def set_clock(self, ns: int) -> None:
        self.now_ns = ns
        c = Clock()
        c.clock.sec, c.clock.nanosec = divmod(ns, 1_000_000_000)
        self.clock_pub.publish(c)

    def publish_state(self, st: SimState, stamp_ns: int) -> None:
        t = stamp_ns * 1e-9
        frame = self.cfg.bridge.frame_id
        self.pose_pub.publish(convert.fill_pose(PoseStamped(), t, st.ee_position, st.ee_quat, frame))
        if st.gripper.size:
            names = [f"finger_joint{i + 1}" for i in range(st.gripper.size)]
            self.gripper_pub.publish(convert.fill_joint_state(JointState(), t, names, st.gripper))
        if self.cfg.sim.part_slices:
            poses = [st.slices[n] for n in self.cfg.sim.part_slices]
            self.parts_pub.publish(convert.fill_pose_array(PoseArray(), t, poses, Pose, frame))
        if st.joints.size:
            self.joints_pub.publish(convert.fill_joint_state(JointState(), t, self.cfg.robot.joint_names, st.joints))
        names = convert.task_state_names(st.slices)
        vals = [v for s in st.slices.values() for v in s.reshape(-1)]
        self.state_pub.publish(convert.fill_joint_state(JointState(), t, names, vals))
        for cam, pub in self.image_pubs.items():
            if cam in st.images:
                pub.publish(convert.fill_image(Image(), t, st.images[cam]))

    # ---------------------------------------------------------------- the loop
    def _wait(self, pred: Callable[[], bool], what: str, stop: threading.Event | None) -> bool:
        deadline = self.cfg.sim.lockstep_timeout_s
        with self._cv:
            ok = self._cv.wait_for(lambda: pred() or bool(stop and stop.is_set()), timeout=deadline)
        if not ok:
            self.timeouts[what] += 1
        return ok

    def _publish(self, st: SimState, stamp_ns: int) -> None:
        """Publish st (stamped stamp_ns), through the perturbations (latency, noise)."""
        out = self.sim.published(st)
        if out is not None:
            self.publish_state(out, round(out.time_s * 1e9))

    def run_episodes(self, n: int, stop: threading.Event | None = None, on_episode=None) -> list[EpisodeOutcome]:
        """Play n episodes in lockstep (call from a thread other than the executor's)."""
        gap_ns = math.ceil((1.0 + (self.cond_steps + 1) * self.dt_ns * 1e-9) * 1e9 / self.dt_ns) * self.dt_ns
        for _ in range(n):
            if stop is not None and stop.is_set():
                break
            # The terminal state is not published (no tick runs on it, as in direct simulation);
            # the next episode starts on the control grid after a gap.
            start_ns = self.grid_ns + gap_ns if self.grid_ns else self.dt_ns * (self.cond_steps + 1)
            st = self.sim.reset(start_ns * 1e-9)
            for j in range(self.cond_steps - 1, 0, -1):  # at rest before the start
                self._publish(SimState(st.time_s - j * self.dt_ns * 1e-9, *_rest(st)), start_ns - j * self.dt_ns)
            t_ns = start_ns
            done = False
            while not done and not (stop is not None and stop.is_set()):
                self._publish(st, t_ns)
                self.grid_ns = t_ns
                self.set_clock(t_ns)
                self._wait(lambda t=t_ns: self._tick_ns >= t, "tick", stop)
                nxt = t_ns + self.dt_ns
                self.set_clock(nxt - self.lead_ns)
                got = self._wait(lambda t=nxt: self._target is not None and self._target[0] >= t - 1000, "target", stop)
                target = self._target[1] if got and self._target is not None else None
                if isinstance(target, np.ndarray):  # joint target: its end-effector pose on the task's model
                    target = self.sim.joint_target_pose(target)
                    target.gripper = self._gripper
                st, done = self.sim.step(target, stack_held=self._tick_held)
                t_ns = nxt
            self.grid_ns = t_ns
            out = self.sim.outcome()
            self.outcomes.append(out)
            self.episode_pub.publish(String(data=json.dumps(out.__dict__)))
            if on_episode is not None:
                on_episode(out)
        return self.outcomes


def _rest(st: SimState) -> tuple:
    return st.slices, st.ee_position, st.ee_quat, st.gripper, st.images


def main(args: list[str] | None = None) -> None:
    """Play `episodes` episodes, then exit 0; SIGINT / SIGTERM end it early, also with 0.

    rclpy's handlers shut the context down on either signal: the episode loop stops at its next
    wait and the executor thread is joined before the interpreter exits (a daemon thread left
    inside rcl aborts the process: "terminate called without an active exception").
    """
    import rclpy
    from rclpy.executors import MultiThreadedExecutor

    rclpy.init(args=args)
    stop = threading.Event()
    rclpy.get_default_context().on_shutdown(stop.set)
    node, th, ex = None, None, None
    try:
        probe = rclpy.create_node(
            "sim_franka_probe", allow_undeclared_parameters=True, automatically_declare_parameters_from_overrides=True
        )
        bundle = probe.get_parameter_or("bundle", None)
        probe.destroy_node()
        cond_steps = 2
        if bundle is not None and bundle.value:
            from dppo_robot.bundle.manifest import read_manifest

            cond_steps = read_manifest(bundle.value).cond_steps
        node = SimFrankaNode(cond_steps=cond_steps)
        node.declare_parameter("episodes", 10)
        ex = MultiThreadedExecutor(num_threads=2)
        ex.add_node(node)
        th = threading.Thread(target=_spin_until_shutdown, args=(ex, stop), name="sim_franka_executor")
        th.start()
        node.run_episodes(int(node.get_parameter("episodes").value), stop)
    except KeyboardInterrupt:
        pass
    except Exception:
        if not stop.is_set() and rclpy.ok():  # else: publishing on a context a signal just shut down
            raise
    finally:
        stop.set()
        if th is not None:
            th.join()
        if ex is not None:
            ex.shutdown()
        if node is not None:
            node.destroy_node()
            node.sim.close()
        rclpy.try_shutdown()


def _spin_until_shutdown(ex, stop: threading.Event) -> None:
    """Spin until stop is set or a signal shuts the context down (then set stop)."""
    try:
        while not stop.is_set() and ex.context.ok():
            ex.spin_once(timeout_sec=0.05)
    except Exception:  # ExternalShutdownException, or RCLError racing the shutdown
        if ex.context.ok():
            raise
    finally:
        stop.set()

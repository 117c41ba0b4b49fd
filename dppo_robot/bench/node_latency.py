"""`dppo-robot bench node`: policy-node latency and control-tick jitter through real Fast DDS.

For each control rate (default 10 and 50 Hz) a fresh reach2d-layout bundle runs in the policy
node on the wall clock; a second node publishes its inputs (end-effector pose + task state)
at input_hz and subscribes to the chunks. Measured: obs-stamp -> chunk-received latency (the
chunk's header stamp is the grid time of the newest observation; received on the subscriber
node, so DDS transport is included), the inference time, and the tick jitter (|interval -
period| of the control timer callbacks). p50/p99 per rate; JSON plus a printed table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def _pcts(x: list[float] | np.ndarray) -> dict[str, float]:
    a = np.asarray(x, np.float64)
    if a.size == 0:
        return {"n": 0, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {
        "n": int(a.size),
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
    }


def bench_rate(control_hz: float, seconds: float, input_hz: float, bundle_root: Path, domain_id: int) -> dict:
    from dppo_robot.deploy.config import ActionMapping, DeployConfig, ObsSource
    from dppo_robot.deploy.fresh_bundle import fresh_task_bundle
    from dppo_robot.deploy_command import import_ros_package

    import_ros_package()
    import rclpy
    from dppo_robot_ros import convert
    from dppo_robot_ros.common import BEST_EFFORT, RELIABLE
    from dppo_robot_ros.compose import Spinner, new_context
    from dppo_robot_ros.policy_node import PolicyNode
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import JointState
    from trajectory_msgs.msg import MultiDOFJointTrajectory

    bundle = fresh_task_bundle(
        bundle_root / f"reach2d_{int(control_hz)}hz",
        obs_range=([-1.5, -1.5, -1.5, -0.5], [1.5, 1.5, 1.5, 3.0]),
        control_hz=control_hz,
        act_steps=1,  # a chain every tick: every tick has a latency sample
    )
    cfg = DeployConfig()
    cfg.policy.control_hz = control_hz
    cfg.policy.obs = [ObsSource("pos", "ee_pose", "position_xy"), ObsSource("goal_rel", "task_state", "values")]
    cfg.policy.default_max_age_s = max(0.25, 3.0 / input_hz)
    cfg.action = ActionMapping(position_slice="vel", position_scale_m=0.1)  # reach2d's velocity action
    ctx = new_context(domain_id)
    policy = PolicyNode(config=cfg, bundle=str(bundle), context=ctx)
    io = rclpy.create_node("bench_io", context=ctx)
    pose_pub = io.create_publisher(PoseStamped, cfg.topics.ee_pose, BEST_EFFORT)
    state_pub = io.create_publisher(JointState, cfg.topics.task_state, RELIABLE)
    lat: list[float] = []

    def on_chunk(m: MultiDOFJointTrajectory) -> None:
        if m.points:
            now = io.get_clock().now().nanoseconds * 1e-9
            lat.append((now - convert.stamp_to_s(m.header.stamp)) * 1e3)

    io.create_subscription(MultiDOFJointTrajectory, cfg.topics.chunk, on_chunk, RELIABLE)
    names = ["pos/0", "pos/1", "goal_rel/0", "goal_rel/1"]

    def feed() -> None:
        t = io.get_clock().now().nanoseconds * 1e-9
        pose_pub.publish(convert.fill_pose(PoseStamped(), t, np.array([0.0, -1.0, 0.0]), np.array([0, 0, 0, 1.0])))
        state_pub.publish(convert.fill_joint_state(JointState(), t, names, np.array([0.0, -1.0, 0.0, 2.0])))

    io.create_timer(1.0 / input_hz, feed)
    policy.trigger_configure()
    policy.trigger_activate()
    spin = Spinner(ctx, [policy, io])
    time.sleep(0.5)  # warm-up
    lat.clear()
    policy.tick_wall.clear()
    policy.inference_ms.clear()
    time.sleep(seconds)
    spin.close()
    ticks = np.diff(np.array(policy.tick_wall))
    out = {
        "control_hz": control_hz,
        "input_hz": input_hz,
        "seconds": seconds,
        "chunks": len(lat),
        "obs_to_chunk_received_ms": _pcts(lat),
        "inference_ms": _pcts(list(policy.inference_ms)),
        "tick_jitter_ms": _pcts(np.abs(ticks - 1.0 / control_hz) * 1e3),
        "tick_interval_ms_mean": float(ticks.mean() * 1e3) if ticks.size else float("nan"),
    }
    policy.destroy_node()
    io.destroy_node()
    ctx.try_shutdown()
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 50.0], help="control rates (Hz)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per rate")
    parser.add_argument("--input-hz", type=float, default=100.0, help="rate of the published inputs")
    parser.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: the environment's)")
    parser.add_argument("--out", default="reports/bench/node_latency.json")


def run(args: argparse.Namespace) -> int:
    domain = args.domain_id if args.domain_id is not None else int(os.environ.get("ROS_DOMAIN_ID", "0"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for hz in args.rates:
            rows.append(bench_rate(hz, args.seconds, args.input_hz, Path(tmp), domain))
    result = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "rmw": os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp (default)"),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    head = ("control_hz", "chunks", "obs->chunk p50", "p99 (ms)", "infer p50", "jitter p50", "p99 (ms)")
    print(" ".join(f"{h:>{w}}" for h, w in zip(head, (10, 6, 15, 9, 10, 11, 9))))
    for r in rows:
        lat, inf, jit = r["obs_to_chunk_received_ms"], r["inference_ms"], r["tick_jitter_ms"]
        print(
            f"{r['control_hz']:>10g} {r['chunks']:>6} {lat['p50']:>15.2f} {lat['p99']:>9.2f} {inf['p50']:>10.2f} "
            f"{jit['p50']:>11.2f} {jit['p99']:>9.2f}"
        )
    print(f"wrote {args.out}")
    return 0

"""`dppo-robot deploy --sim`: the ROS 2 node classes composed on one rclpy executor, N episodes.

For machines without the `ros2` CLI: the policy node (lifecycle: configured and activated
here), the Franka bridge and the simulated Franka run in this process and talk over Fast DDS
on simulated time. Prints the success rate with its Wilson interval and writes deploy.json.
The ROS package (ros2_ws/src/dppo_robot) is imported from the checkout when not installed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROS_PKG = Path(__file__).resolve().parents[1] / "ros2_ws" / "src" / "dppo_robot"


def import_ros_package() -> None:
    """Make dppo_robot_ros importable (installed by colcon, or from this checkout)."""
    try:
        import dppo_robot_ros  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(ROS_PKG))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sim", action="store_true", required=True, help="against the simulated Franka (required)")
    parser.add_argument("--bundle", required=True, help="policy bundle directory")
    parser.add_argument(
        "--config", default=str(ROS_PKG / "config" / "sim_reach2d.yaml"), help="deployment + sim config YAML"
    )
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument(
        "--seed", type=int, help="override sim.seed and policy.seed (episodes and noise then follow `evaluate --seed`)"
    )
    parser.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: the environment's)")
    parser.add_argument("--out", default="reports/deploy", help="directory for deploy.json")


def run(args: argparse.Namespace) -> int:
    from dppo_robot.confidence import proportion
    from dppo_robot.deploy.config import DeployConfig
    from dppo_robot.typed_config import load_yaml

    import_ros_package()
    from dppo_robot_ros.compose import SimStack, new_context

    cfg = load_yaml(DeployConfig, args.config)
    if args.seed is not None:
        cfg.sim.seed = cfg.policy.seed = args.seed
    ctx = new_context(args.domain_id)
    t0 = time.monotonic()
    stack = SimStack(cfg, args.bundle, ctx)
    try:
        outs = stack.run(
            args.episodes,
            on_episode=lambda o: print(f"episode {o.episode}: seed {o.seed} success={o.success} length={o.length}"),
        )
        timeouts, stats, counters = dict(stack.sim.timeouts), dict(stack.policy.stats), dict(stack.bridge.core.counters)
        hold_reasons = dict(stack.policy.hold_reasons.most_common())
    finally:
        stack.close()
        ctx.try_shutdown()
    p = proportion(sum(o.success for o in outs), len(outs))
    out = {
        "bundle": args.bundle,
        "config": args.config,
        "task": cfg.sim.task,
        "episodes": p.trials,
        "successes": p.successes,
        "success_rate": p.rate,
        "success_ci95": [p.low, p.high],
        "mean_return": sum(o.ret for o in outs) / max(len(outs), 1),
        "lockstep_timeouts": timeouts,
        "policy": stats,
        "policy_hold_reasons": hold_reasons,
        "bridge": counters,
        "wall_s": round(time.monotonic() - t0, 1),
        "episodes_detail": [o.__dict__ for o in outs],
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "deploy.json").write_text(json.dumps(out, indent=2))
    print(
        f"{cfg.sim.task} through ROS 2: {p.successes}/{p.trials} successes = {p.rate:.2f} "
        f"(95% Wilson [{p.low:.2f}, {p.high:.2f}]), {out['wall_s']} s"
    )
    return 0

"""Sim-in-the-loop trials: the bundle through the ROS 2 stack against the simulated Franka.

Uses the deployment stack's composed runner (`dppo_robot_ros.compose.SimStack`: policy node,
bridge and simulated Franka on one rclpy executor over Fast DDS, simulated time). The
`dppo_robot_ros` package lives in ros2_ws/src/dppo_robot; when it is not installed (colcon)
it is taken from this checkout. Episodes are sequential (one stack, one DDS domain).

This module imports rclpy; nothing in the ROS-free core imports it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym

from dppo_robot.sim2real.records import TrialRecord, TrialStore, new_trial_id, utc_now
from dppo_robot.sim2real.runners import EpisodeEnd, bundle_id, make_record

ROS_PKG = Path(__file__).resolve().parents[2] / "ros2_ws" / "src" / "dppo_robot"


def import_compose() -> Any:
    """dppo_robot_ros.compose, from the installed package or this checkout's ros2_ws."""
    try:
        import dppo_robot_ros.compose as compose
    except ImportError:
        if not (ROS_PKG / "dppo_robot_ros" / "compose.py").is_file():
            raise NotImplementedError(
                "sim_in_the_loop trials need the ROS 2 deployment package dppo_robot_ros (its compose.SimStack "
                f"episode runner); it is neither installed nor at {ROS_PKG}"
            ) from None
        sys.path.insert(0, str(ROS_PKG))
        import dppo_robot_ros.compose as compose
    if not hasattr(compose, "SimStack"):
        raise NotImplementedError("dppo_robot_ros.compose has no SimStack episode runner")
    return compose


class _LastInfo(gym.Wrapper):
    """Keeps the last step's info (the simulated Franka does not pass phases on)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.last_info: dict = {}

    def reset(self, **kwargs: Any) -> Any:
        obs, info = self.env.reset(**kwargs)
        self.last_info = dict(info)
        return obs, info

    def step(self, action: Any) -> Any:
        obs, reward, term, trunc, info = self.env.step(action)
        self.last_info = dict(info)
        return obs, reward, term, trunc, info


def run_sim_in_the_loop_trials(
    bundle_dir: str | Path,
    deploy_config: str | Path,
    n: int,
    store: TrialStore,
    *,
    task: str | None = None,
    seed: int = 0,
    session: str = "",
    domain_id: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[TrialRecord]:
    """n trials through the ROS 2 stack (DeployConfig YAML `deploy_config`); records appended as each ends."""
    from dppo_robot.deploy.config import DeployConfig
    from dppo_robot.sim2real.records import TrialError
    from dppo_robot.typed_config import load_yaml

    if n < 1:
        raise ValueError(f"number of trials must be >= 1, got {n}")
    cfg = load_yaml(DeployConfig, deploy_config)
    if task is not None and cfg.sim.task != task:
        raise TrialError(f"{deploy_config}: sim.task is '{cfg.sim.task}' but the trials are of task '{task}'")
    cfg.sim.seed = seed
    compose = import_compose()
    bid = bundle_id(bundle_dir)
    session = session or f"sitl-{time.strftime('%Y%m%dT%H%M%S')}-{new_trial_id()[:4]}"
    if domain_id is None:
        domain_id = int(os.environ.get("ROS_DOMAIN_ID", "0"))
    ctx = compose.new_context(domain_id)
    records: list[TrialRecord] = []
    try:
        stack = compose.SimStack(cfg, str(bundle_dir), ctx)
        sim = stack.sim.sim
        tap = _LastInfo(sim.env)
        sim.env = tap
        started = [utc_now()]

        def on_episode(out: Any) -> None:
            inf = tap.last_info
            phase = inf.get("phase")
            ep = EpisodeEnd(
                seed=int(out.seed),
                success=bool(out.success),
                episode_return=float(out.ret),
                steps=int(out.length),
                phase=None if phase is None else int(phase),
                phase_name=inf.get("phase_name"),
                start_utc=started[0],
                end_utc=utc_now(),
                aborted=out.aborted,
            )
            rec = make_record(bid, sim.task, "sim_in_the_loop", ep, len(records), session)
            store.append(rec)
            records.append(rec)
            started[0] = utc_now()
            if progress is not None:
                progress(len(records), n)

        try:
            stack.run(n, on_episode=on_episode)
        finally:
            stack.close()
    finally:
        ctx.try_shutdown()
    return records

"""`make demo` / `dppo-robot demo`: the product end to end on the bundled default policy.

1. load and verify the default bundle (policies/square_dppo: robosuite Square, BC from scripted
   demonstrations, then DPPO, trained by this project's pipeline; its bundle.yaml says how);
2. N seeded trials directly in simulation (onnxruntime, worker processes);
3. N trials through the ROS 2 stack (policy lifecycle node, Franka bridge, simulated Franka on
   one rclpy executor over Fast DDS) with hardware-like perturbations (config/sim_square.yaml:
   observations 20 ms late and noisy, targets 20 ms late, a held trial stopped after 2 s): the
   stand-in for a hardware session;
4. the sim-to-real report (Markdown, HTML with plots, JSON) in reports/demo/ and its summary.
Every figure it prints is measured in this run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BUNDLE = ROOT / "policies" / "square_dppo"
DEFAULT_ROS_CONFIG = ROOT / "ros2_ws" / "src" / "dppo_robot" / "config" / "sim_square.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", default=str(DEFAULT_BUNDLE), help="policy bundle (default: policies/square_dppo)")
    parser.add_argument("--task", default=None, help="task (default: from the ROS config's sim.task)")
    parser.add_argument("--ros-config", default=str(DEFAULT_ROS_CONFIG), help="deploy + sim config of the ROS run")
    parser.add_argument("--trials", type=int, default=20, help="trials per setting (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the direct simulation")
    parser.add_argument("--seed", type=int, default=200_000, help="seed of the first trial (both settings)")
    parser.add_argument("--out", default="reports/demo", help="output directory (default reports/demo)")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from dppo_robot.bundle.info import describe
    from dppo_robot.bundle.manifest import read_manifest
    from dppo_robot.deploy.config import DeployConfig
    from dppo_robot.deploy.sim_franka import sim_task_config
    from dppo_robot.runtime.errors import BundleError
    from dppo_robot.runtime.policy_runtime import verify_files
    from dppo_robot.sim2real.records import TrialStore
    from dppo_robot.sim2real.report import rich_table, write_report
    from dppo_robot.sim2real.ros_runner import run_sim_in_the_loop_trials
    from dppo_robot.sim2real.runners import run_sim_trials
    from dppo_robot.typed_config import ConfigError, load_yaml

    console = Console()
    t_start = time.monotonic()
    bundle = Path(args.bundle)
    try:
        manifest = read_manifest(bundle)
    except ConfigError as e:
        raise BundleError(f"{e} (the default policy is committed in policies/; pass --bundle DIR)") from None
    verify_files(bundle, manifest)
    ros_cfg = load_yaml(DeployConfig, args.ros_config)
    if args.task:
        ros_cfg.sim.task = args.task
    task = sim_task_config(ros_cfg.sim)  # both arms play the task exactly as the simulated Franka does
    out = Path(args.out)
    trials_dir = out / "trials"
    shutil.rmtree(trials_dir, ignore_errors=True)
    trials_dir.mkdir(parents=True)

    console.rule(f"[bold]dppo_robot demo: {manifest.name} on {task.name}")
    for line in describe(manifest):
        console.print("  " + line)

    def progress(label: str):
        t0 = time.monotonic()

        def show(done: int, total: int) -> None:
            console.print(f"  {label}: trial {done}/{total} ({time.monotonic() - t0:.0f} s)", highlight=False)

        return show

    console.rule("[bold]1/3 trials in simulation (onnxruntime)")
    sim_store = TrialStore(trials_dir / "sim.jsonl")
    sim = run_sim_trials(
        bundle,
        task,
        args.trials,
        sim_store,
        seed=args.seed,
        n_envs=min(8, args.trials),
        workers=args.workers,
        progress=progress("sim"),
    )
    console.print(f"  sim: {sum(r.success for r in sim)}/{len(sim)} successes")

    console.rule("[bold]2/3 trials through ROS 2 against the simulated Franka")
    console.print(
        f"  perturbations: obs latency {ros_cfg.sim.obs_latency_s * 1e3:.0f} ms, "
        f"obs noise {ros_cfg.sim.obs_noise_std}, command latency {ros_cfg.bridge.latency_s * 1e3:.0f} ms"
    )
    ros_store = TrialStore(trials_dir / "sim_in_the_loop.jsonl")
    ros = run_sim_in_the_loop_trials(
        bundle, args.ros_config, args.trials, ros_store, task=task.name, seed=args.seed, progress=progress("ROS 2")
    )
    console.print(f"  ROS 2: {sum(r.success for r in ros)}/{len(ros)} successes")

    console.rule("[bold]3/3 sim-to-real report")
    files = write_report([sim_store.path, ros_store.path], out)
    console.print(rich_table(json.loads(files["json"].read_text())))  # the analysis write_report saved
    for kind, path in files.items():
        console.print(f"  {kind}: {path}")
    console.print(f"  wall time {time.monotonic() - t_start:.0f} s")
    return 0

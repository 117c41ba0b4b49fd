"""`dppo-robot trials sim`: N seeded trials of a bundle in simulation (direct or through the ROS 2 stack)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dppo_robot.sim2real.records import TrialStore

DEPLOY_CONFIGS = Path(__file__).resolve().parents[2] / "ros2_ws" / "src" / "dppo_robot" / "config"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="policy bundle directory")
    parser.add_argument("--task", required=True, help="registered task name (e.g. one_leg, lift, reach2d)")
    parser.add_argument("--n", type=int, default=20, help="number of trials (default 20)")
    parser.add_argument("--setting", choices=["sim", "sim_in_the_loop"], default="sim")
    parser.add_argument("--workers", type=int, default=0, help="env worker processes (sim; 0 = in-process)")
    parser.add_argument("--envs", type=int, default=8, help="envs stepped together (sim)")
    parser.add_argument("--seed", type=int, default=0, help="env i's first episode has seed + i")
    parser.add_argument("--randomness", choices=["low", "med"], help="task randomness level (tasks that have one)")
    parser.add_argument("--max-episode-steps", type=int, help="override the task's episode length")
    parser.add_argument(
        "--deploy-config",
        help="sim_in_the_loop: DeployConfig YAML of the stack (default: ros2_ws/.../config/sim_<task>.yaml)",
    )
    parser.add_argument("--out", help="trial store (JSONL, appended; default trials/<bundle>-<setting>.jsonl)")


def run(args: argparse.Namespace) -> int:
    import dppo_robot.envs  # noqa: F401  (registers the tasks)
    from dppo_robot.envs.registry import default_task_config
    from dppo_robot.sim2real.runners import bundle_id

    bid = bundle_id(args.bundle)
    out = Path(args.out or f"trials/{bid.name}-{args.setting}.jsonl")
    store = TrialStore(out)

    def progress(done: int, total: int) -> None:
        print(f"\r{done}/{total} trials", end="", flush=True)

    if args.setting == "sim":
        from dppo_robot.sim2real.runners import run_sim_trials

        overrides = {}
        if args.randomness:
            overrides["randomness"] = args.randomness
        if args.max_episode_steps:
            overrides["max_episode_steps"] = args.max_episode_steps
        task = default_task_config(args.task, seed=args.seed, **overrides)
        records = run_sim_trials(
            args.bundle, task, args.n, store, seed=args.seed, n_envs=args.envs, workers=args.workers, progress=progress
        )
    else:
        from dppo_robot.sim2real.records import TrialError
        from dppo_robot.sim2real.ros_runner import run_sim_in_the_loop_trials

        if args.randomness or args.max_episode_steps or args.workers:
            raise TrialError(
                "--randomness, --max-episode-steps and --workers apply to --setting sim; sim_in_the_loop takes the "
                "task settings from the deploy config (sim.task_overrides, sim.max_episode_steps) and runs sequentially"
            )

        cfg = Path(args.deploy_config) if args.deploy_config else DEPLOY_CONFIGS / f"sim_{args.task}.yaml"
        if not cfg.is_file():
            raise FileNotFoundError(f"{cfg}: no deploy config for task '{args.task}' (pass --deploy-config)")
        records = run_sim_in_the_loop_trials(
            args.bundle, cfg, args.n, store, task=args.task, seed=args.seed, progress=progress
        )
    ok = sum(r.success for r in records)
    print(f"\n{bid.name} ({args.setting}, {args.task}): {ok}/{len(records)} successes -> {out}")
    return 0

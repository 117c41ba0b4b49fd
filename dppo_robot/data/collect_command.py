"""`dppo-robot collect-demos TASK --episodes N --out DIR`: scripted demonstrations in the reference layout."""

from __future__ import annotations

import argparse
import sys

from dppo_robot.data.demonstrators import DEMONSTRATORS, collect_demos
from dppo_robot.envs.registry import default_task_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", help="registered task (lift, can, square, reach2d, ...)")
    parser.add_argument("--episodes", type=int, default=100, help="demonstrator episodes to run")
    parser.add_argument("--out", required=True, help="directory for train.npz, normalization.npz, demos_report.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", choices=["success", "all"], default="success", help="which episodes to keep")
    parser.add_argument("--cameras", nargs="*", default=[], help="cameras for a pixel dataset (e.g. agentview)")
    parser.add_argument(
        "--exec-noise",
        type=float,
        default=0.0,
        help="DART: std of Gaussian noise added to the executed arm action (not to the recorded one), "
        "so the data shows the demonstrator correcting its own drift (default 0)",
    )


def run(args: argparse.Namespace) -> int:
    cfg = default_task_config(args.task, cameras=list(args.cameras))  # unknown task: UnknownTaskError
    if args.task not in DEMONSTRATORS:
        print(
            f"dppo-robot collect-demos: error: task '{args.task}' has no scripted demonstrator "
            f"(have {', '.join(sorted(DEMONSTRATORS))})",
            file=sys.stderr,
        )
        return 2
    if not 0.0 <= args.exec_noise <= 1.0:
        print(f"dppo-robot collect-demos: error: --exec-noise {args.exec_noise} not in [0, 1]", file=sys.stderr)
        return 2
    r = collect_demos(cfg, args.episodes, args.seed, args.out, keep=args.keep, exec_noise_std=args.exec_noise)
    print(
        f"{r['task']}: demonstrator succeeded {r['successes']}/{r['episodes']} ({r['rate']:.0%}); "
        f"kept {r['kept']} episodes, {r['steps']} steps -> {args.out}"
    )
    return 0

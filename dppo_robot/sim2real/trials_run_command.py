"""`dppo-robot trials run`: a hardware trial session with the operator (see dppo_robot.sim2real.session)."""

from __future__ import annotations

import argparse

from dppo_robot.sim2real.session import DryRunActivator, TrialSession, check_session_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="session YAML (task, bundles, trials_per_bundle, record_topics, ...)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="do not call the policy node's lifecycle service (no robot motion); topics are still recorded",
    )
    parser.add_argument("--no-record", action="store_true", help="record no MCAP (no ROS needed with --dry-run)")
    parser.add_argument("--out", help="override out_dir (trials.jsonl, session-*.json, mcap/)")
    parser.add_argument("--domain-id", type=int, help="ROS domain id (default: ROS_DOMAIN_ID or 0)")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    cfg = check_session_config(args.config)
    if args.out:
        cfg.out_dir = args.out
    console = Console(highlight=False)

    def say(text: str) -> None:
        console.print(text, markup=False)

    def ask(prompt: str) -> str:
        console.print(prompt, end="", markup=False)
        console.file.flush()
        return input()

    record = bool(cfg.record_topics) and not args.no_record
    graph = None
    if record or not args.dry_run:
        from dppo_robot.sim2real.ros_io import RosGraph

        graph = RosGraph(args.domain_id)
    try:
        if args.dry_run:
            activator = DryRunActivator(say, cfg.policy_node)
        else:
            from dppo_robot.sim2real.ros_io import LifecycleActivator

            activator = LifecycleActivator(graph, cfg.policy_node, cfg.service_timeout_s)
        recorder = None
        if record:
            from dppo_robot.sim2real.ros_io import McapRecorder, TopicSpec

            recorder = McapRecorder(graph, [TopicSpec(t.topic, t.type) for t in cfg.record_topics], cfg.part_pose_topic)
        session = TrialSession(cfg, ask, say, activator, recorder)
        records = session.run()
    finally:
        if graph is not None:
            graph.close()
    ok = sum(r.success for r in records)
    unlabelled = f"; {len(session.unlabelled)} ran but unlabelled (kept)" if session.unlabelled else ""
    say(f"{len(records)} trials recorded ({ok} successes){unlabelled} in {session.store.path}")
    return 0

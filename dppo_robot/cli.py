"""The `dppo-robot` command: one subcommand per job, each a thin call into the core.

Errors that come from bad input (a config, a checkpoint, a bundle) print one clear line and
exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Callable

# subcommand path -> (module, help). Modules are imported lazily so `dppo-robot --help` is fast
# and a subcommand's heavy imports (torch, onnxruntime, mujoco) load only when it runs.
COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("demo",): ("dppo_robot.demo", "run the main job on the bundled default (export and infer a policy)"),
    ("collect-demos",): ("dppo_robot.data.collect_command", "scripted demonstrations in the reference data layout"),
    ("pretrain",): ("dppo_robot.train.pretrain", "behaviour-clone a diffusion or Gaussian policy from demonstrations"),
    ("finetune",): ("dppo_robot.train.finetune", "fine-tune with DPPO (or Gaussian PPO) in simulation; resumes"),
    ("evaluate",): ("dppo_robot.train.evaluate", "success rate of a checkpoint or bundle in simulation"),
    ("deploy",): ("dppo_robot.deploy_command", "run the ROS 2 nodes on one executor against the simulated Franka"),
    ("export",): ("dppo_robot.bundle.export", "turn a dppo_robot checkpoint into a verified policy bundle"),
    ("import-dppo",): ("dppo_robot.bundle.import_dppo", "turn a reference DPPO checkpoint into a policy bundle"),
    ("bundle", "info"): ("dppo_robot.bundle.info", "describe a policy bundle and verify its files"),
    ("bundle", "seal"): ("dppo_robot.bundle.seal_command", "check a bundle's files and write its manifest digest"),
    ("bench", "train"): ("dppo_robot.bench.train_throughput", "env steps/s of the collector and PPO update samples/s"),
    ("bench", "update"): ("dppo_robot.bench.update_vs_reference", "DPPO update samples/s vs the reference DPPO code"),
    ("bench", "node"): ("dppo_robot.bench.node_latency", "policy-node latency and tick jitter through Fast DDS"),
    ("bench", "inference"): ("dppo_robot.bench.inference", "time the DDIM/DDPM chain: torch vs ONNX Runtime"),
    ("bench", "trials"): ("dppo_robot.bench.trial_store", "time loading a JSONL trial store of N records"),
    ("calibrate", "intrinsics"): ("dppo_robot.calibration.commands.intrinsics", "intrinsics from ChArUco or RealSense"),
    ("calibrate", "hand-eye"): ("dppo_robot.calibration.commands.hand_eye", "extrinsics from board + robot poses"),
    ("calibrate", "verify"): ("dppo_robot.calibration.commands.verify", "check a calibration file on fresh data"),
    ("trials", "sim"): ("dppo_robot.sim2real.trials_sim_command", "seeded trials of a bundle in sim or via ROS 2"),
    ("trials", "run"): ("dppo_robot.sim2real.trials_run_command", "hardware trial session (operator, A/B, MCAP)"),
    ("report",): ("dppo_robot.sim2real.report_command", "success rates, phase funnel and sim-to-real gap of trials"),
}


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean bad input rather than a bug."""
    errors: list[type[BaseException]] = [FileNotFoundError]
    for mod, name in (
        ("dppo_robot.typed_config", "ConfigError"),
        ("dppo_robot.checkpoint", "CheckpointError"),
        ("dppo_robot.runtime.errors", "BundleError"),
        ("dppo_robot.runtime.errors", "ObservationError"),
        ("dppo_robot.runtime.errors", "NonFiniteActionError"),
        ("dppo_robot.runtime.errors", "ProviderError"),
        ("dppo_robot.bundle.export", "ExportError"),
        ("dppo_robot.data.dataset", "DatasetError"),
        ("dppo_robot.envs.registry", "UnknownTaskError"),
        ("dppo_robot.calibration.errors", "CalibrationError"),
        ("dppo_robot.deploy.camera", "CameraError"),
        ("dppo_robot.sim2real.stats", "StatsError"),
        ("dppo_robot.train.divergence", "TrainingDivergedError"),
    ):
        with contextlib.suppress(ImportError, AttributeError):
            errors.append(getattr(importlib.import_module(mod), name))
    return tuple(errors)


def build_parser() -> tuple[argparse.ArgumentParser, dict[tuple[str, ...], argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="dppo-robot", description="DPPO diffusion policies: fine-tune in sim, export, deploy, evaluate."
    )
    from dppo_robot import __version__

    parser.add_argument("--version", action="version", version=f"dppo-robot {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    groups: dict[str, argparse._SubParsersAction] = {}
    leaves: dict[tuple[str, ...], argparse.ArgumentParser] = {}
    for path, (_, help_text) in COMMANDS.items():
        if len(path) == 1:
            leaves[path] = sub.add_parser(path[0], help=help_text, description=help_text)
            continue
        if path[0] not in groups:
            g = sub.add_parser(path[0], help=f"{path[0]} subcommands")
            groups[path[0]] = g.add_subparsers(dest=f"{path[0]}_command", metavar="SUBCOMMAND", required=True)
        leaves[path] = groups[path[0]].add_parser(path[1], help=help_text, description=help_text)
    return parser, leaves


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, leaves = build_parser()
    # Only the chosen subcommand's module is imported to add its arguments.
    chosen = None
    for path in COMMANDS:
        if argv[: len(path)] == list(path):
            chosen = path
    if chosen is not None:
        module = importlib.import_module(COMMANDS[chosen][0])
        module.add_arguments(leaves[chosen])
        leaves[chosen].set_defaults(_run=module.run)
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args._run
    try:
        return int(run(args) or 0)
    except KeyboardInterrupt:
        print("dppo-robot: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as e:
        print(f"dppo-robot {' '.join(chosen or ())}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

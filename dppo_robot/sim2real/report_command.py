"""`dppo-robot report`: success rates, phase funnel and the sim-to-real gap from trial stores."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trials", nargs="+", help="trial stores (*.jsonl) or folders of them; one task")
    parser.add_argument("--out", required=True, help="output folder (report.md, report.html, report.json)")
    parser.add_argument("--confidence", type=float, default=0.95, help="interval confidence level (default 0.95)")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from dppo_robot.sim2real.report import rich_table, write_report

    files = write_report(args.trials, args.out, args.confidence)
    data = json.loads(files["json"].read_text())
    console = Console()
    console.print(rich_table(data))  # success per arm, then the gap per policy between settings
    for r in data["rank_agreement"]:
        console.print(f"rank agreement {r['from']} vs {r['to']}: Pearson {r['pearson']:.3f}, MMRV {r['mmrv']:.3f}")
    console.print(f"report: {', '.join(str(p) for p in files.values())}", markup=False)
    return 0

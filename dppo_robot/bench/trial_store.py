"""`dppo-robot bench trials`: time loading a JSONL trial store of N records (load_trials).

Writes N valid hardware-style records (one JSON object per line) to a temporary store, then
times load_trials over it `repeats` times and reports the best and median wall time and the
time per record. Prints a table and writes JSON (--out). Wall-clock on a possibly shared
machine: compare runs taken back to back.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from dppo_robot.sim2real.records import TrialRecord, load_trials
from dppo_robot.typed_config import to_dict

PHASES = ["start", "grasped", "lifted", "success"]


def write_store(path: Path, n: int) -> Path:
    """A store of n distinct, valid records."""
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            phase = i % len(PHASES)
            rec = TrialRecord(
                bundle_name=f"bundle_{i % 3}",
                bundle_sha256=f"{i % 3:064x}",
                setting="hardware",
                task="one_leg",
                success=phase == len(PHASES) - 1,
                phase_reached=phase,
                phase_name=PHASES[phase],
                phase_names=PHASES,
                duration_s=12.5 + i % 7,
                start_utc="2026-11-01T10:00:00.000+00:00",
                end_utc="2026-11-01T10:00:12.500+00:00",
                randomness="low",
                initial_condition=f"ic{i % 10}",
                failure_mode="" if phase == len(PHASES) - 1 else "missed_grasp",
                trial_id=f"{i:012x}",
                session="bench",
                trial_index=i,
                log_path=f"mcap/{i:012x}.mcap",
                phase_source="operator",
            )
            f.write(json.dumps(to_dict(rec)) + "\n")
    return path


def bench(n: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_store(Path(tmp) / "trials.jsonl", n)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            loaded = load_trials([path])
            times.append(time.perf_counter() - t0)
            assert len(loaded.records) == n
    return {
        "n_records": n,
        "repeats": repeats,
        "best_s": min(times),
        "median_s": statistics.median(times),
        "per_record_us": min(times) / n * 1e6,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n", type=int, default=50_000, help="records in the store (default 50000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="write the result as JSON here")


def run(args: argparse.Namespace) -> int:
    res = bench(args.n, args.repeats)
    print(f"{'records':>10} {'best s':>10} {'median s':>10} {'us/record':>10}")
    print(f"{res['n_records']:>10} {res['best_s']:>10.3f} {res['median_s']:>10.3f} {res['per_record_us']:>10.1f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    add_arguments(p)
    raise SystemExit(run(p.parse_args()))

"""Metrics of a training job: CSV and JSONL rows appended as they happen, PNG curves on demand.

Rows are flushed and fsynced per write, so a crash loses nothing already logged; on resume the
logger drops rows past the checkpoint's step (they belong to work that will be redone) and
appends from there.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any


class MetricsLog:
    """One metrics stream (e.g. "train" or "eval") as <dir>/<name>.jsonl, .csv and .png."""

    def __init__(self, run_dir: str | Path, name: str, step_key: str = "itr") -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.step_key = step_key
        self.jsonl = self.dir / f"{name}.jsonl"
        self.csv = self.dir / f"{name}.csv"
        self.rows: list[dict[str, Any]] = self._read()

    def _read(self) -> list[dict[str, Any]]:
        if not self.jsonl.is_file():
            return []
        rows = []
        for line in self.jsonl.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a torn last line from a crash: drop it
        return rows

    def truncate_after(self, step: int) -> None:
        """Forget rows logged after `step` (used when resuming from a checkpoint at `step`)."""
        self.rows = [r for r in self.rows if r.get(self.step_key, -1) <= step]
        self._rewrite()

    def _rewrite(self) -> None:
        tmp = self.jsonl.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in self.rows))
        os.replace(tmp, self.jsonl)
        self._write_csv()

    def _write_csv(self) -> None:
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        tmp = self.csv.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.rows)
        os.replace(tmp, self.csv)

    def log(self, row: dict[str, Any]) -> None:
        """Append one row (numbers and strings); written through to disk immediately."""
        clean = {k: (float(v) if hasattr(v, "item") else v) for k, v in row.items()}
        self.rows.append(clean)
        with open(self.jsonl, "a") as f:
            f.write(json.dumps(clean) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._write_csv()

    def plot(self, keys: list[str], title: str | None = None) -> Path | None:
        """PNG of the given keys against the step; None when nothing to plot."""
        series = {k: [(r[self.step_key], r[k]) for r in self.rows if _finite(r.get(k))] for k in keys}
        series = {k: v for k, v in series.items() if v}
        if not series:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(len(series), 1, figsize=(7, 2.4 * len(series)), sharex=True, squeeze=False)
        for ax, (k, pts) in zip(axes[:, 0], series.items()):
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, ms=3)
            ax.set_ylabel(k)
            ax.grid(alpha=0.3)
        axes[-1, 0].set_xlabel(self.step_key)
        fig.suptitle(title or f"{self.dir.name}: {self.name}")
        fig.tight_layout()
        out = self.dir / f"{self.name}.png"
        fig.savefig(out, dpi=110)
        plt.close(fig)
        return out


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

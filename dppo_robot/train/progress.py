"""Progress display of long jobs: a rich bar on a terminal, plain periodic lines in logs/CI."""

from __future__ import annotations

import sys
import time


class JobProgress:
    """with JobProgress("finetune lift", total, start) as bar: bar.update(done, text); bar.note(line)."""

    def __init__(self, title: str, total: int, start: int = 0, unit: str = "itr", plain_every_s: float = 15.0) -> None:
        self.title, self.total, self.unit = title, total, unit
        self.done = start
        self.start = start
        self.plain_every_s = plain_every_s
        self.rich = sys.stdout.isatty()
        self._last_plain = 0.0
        self._t0 = time.monotonic()

    def __enter__(self) -> JobProgress:
        if self.rich:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._p = Progress(
                TextColumn("[bold]{task.fields[title]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.description}"),
            )
            self._p.start()
            self._task = self._p.add_task("", total=self.total, completed=self.start, title=self.title)
        else:
            print(f"[{self.title}] starting at {self.unit} {self.start}/{self.total}", flush=True)
        return self

    def update(self, done: int, text: str = "") -> None:
        self.done = done
        if self.rich:
            self._p.update(self._task, completed=done, description=text)
            return
        now = time.monotonic()
        if now - self._last_plain >= self.plain_every_s or done >= self.total:
            self._last_plain = now
            rate = (done - self.start) / max(now - self._t0, 1e-9)
            eta = (self.total - done) / rate if rate > 0 else float("nan")
            print(f"[{self.title}] {self.unit} {done}/{self.total} {text} (eta {eta:.0f} s)", flush=True)

    def note(self, line: str) -> None:
        if self.rich:
            self._p.console.log(line)
        else:
            print(f"[{self.title}] {line}", flush=True)

    def __exit__(self, *exc) -> None:
        if self.rich:
            self._p.stop()

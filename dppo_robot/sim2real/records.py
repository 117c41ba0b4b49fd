"""Trial records: one schema for simulated, sim-in-the-loop and hardware trials, stored as JSONL.

A store is one JSON object per line, appended, flushed and fsynced per trial, so a crash or a
killed process loses no finished trial. Reading is strict: a malformed line or an unknown
field is an error naming the file and line, and so is an impossible value (a non-finite number,
success short of the last phase, an end before the start, a phase outside the task's names).
Only a truncated last line (no trailing newline: the write that a kill interrupted) is skipped,
with a warning and a note that load_trials carries into the report. load_trials also drops
repeated records (the same store passed twice, or a trial_id repeated with the same content)
with a note, refuses a trial_id repeated with different content, and notes empty stores.
A trial that ran but was never labelled (phase_source "unlabelled", e.g. the operator's input
ended) is kept in the store; the report counts it apart from the rates, with a note.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from dppo_robot.typed_config import ConfigError, from_dict, to_dict

SCHEMA_VERSION = 1
SETTINGS = ("sim", "sim_in_the_loop", "hardware")
Setting = Literal["sim", "sim_in_the_loop", "hardware"]


class TrialError(ConfigError):
    """Bad trial input (records, sessions, comparisons); the message names the file and line."""


class TruncatedRecordWarning(UserWarning):
    """The last line of a trial store was cut short (a killed writer); it was skipped."""


@dataclass
class TrialRecord:
    """One trial of one policy bundle, in any setting."""

    bundle_name: str
    bundle_sha256: str  # sha256 of the bundle's ONNX graph (policy.onnx)
    setting: Setting
    task: str
    success: bool
    phase_reached: int  # highest phase reached in order (0 = none)
    phase_name: str
    phase_names: list[str]  # the task's phase names, names[0] = nothing done yet
    duration_s: float
    start_utc: str
    end_utc: str
    randomness: str = ""  # task randomness level ("low", "med"; "" when the task has none)
    initial_condition: str = ""  # initial-condition id of a hardware trial, or "seed:<n>" in sim
    seed: int | None = None
    failure_mode: str = ""  # tag ("" on success)
    notes: str = ""
    log_path: str = ""  # the trial's MCAP (hardware) or other log, relative to the store's folder
    trial_id: str = ""
    session: str = ""
    trial_index: int = 0
    bundle_path: str = ""
    episode_return: float | None = None
    steps: int | None = None
    phase_source: Literal["env", "operator", "none", "unlabelled"] = "none"  # unlabelled: ran, never labelled
    auto_phase: int | None = None  # phase detected from recorded part poses (hardware)
    phase_disagreement: bool = False  # auto_phase differs from the operator's label
    schema_version: int = SCHEMA_VERSION

    def validate(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise ValueError(f"schema_version {self.schema_version} is not supported (expected {SCHEMA_VERSION})")
        if self.setting not in SETTINGS:
            raise ValueError(f"setting {self.setting!r} is not one of {list(SETTINGS)}")
        if not self.task:
            raise ValueError("task must not be empty")
        if not self.bundle_name:
            raise ValueError("bundle_name must not be empty")
        if len(self.phase_names) < 2 or len(set(self.phase_names)) != len(self.phase_names):
            raise ValueError(f"phase_names needs >= 2 distinct names (names[0] = nothing done), got {self.phase_names}")
        if self.phase_reached < 0:
            raise ValueError(f"phase_reached must be >= 0, got {self.phase_reached}")
        if self.phase_reached >= len(self.phase_names) or self.phase_names[self.phase_reached] != self.phase_name:
            raise ValueError(
                f"phase_reached {self.phase_reached} ({self.phase_name!r}) does not match "
                f"phase_names {self.phase_names}"
            )
        last = len(self.phase_names) - 1
        if self.success != (self.phase_reached == last):
            raise ValueError(
                f"success {str(self.success).lower()} with phase_reached {self.phase_reached} "
                f"({self.phase_name!r}): a success reaches the last phase ({last}, {self.phase_names[last]!r}), "
                "a failure does not"
            )
        if self.auto_phase is not None and not 0 <= self.auto_phase <= last:
            raise ValueError(f"auto_phase {self.auto_phase} is outside the phases 0..{last}")
        if not (math.isfinite(self.duration_s) and self.duration_s >= 0):
            raise ValueError(f"duration_s must be finite and >= 0 (s), got {self.duration_s}")
        if self.episode_return is not None and not math.isfinite(self.episode_return):
            raise ValueError(f"episode_return must be finite or null, got {self.episode_return}")
        for name in ("steps", "trial_index"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"{name} must be >= 0, got {v}")
        times = []
        for name in ("start_utc", "end_utc"):
            try:
                times.append(dt.datetime.fromisoformat(getattr(self, name)))
            except ValueError:
                raise ValueError(f"{name} {getattr(self, name)!r} is not an ISO 8601 time") from None
        start, end = times
        if (start.tzinfo is None) != (end.tzinfo is None):
            raise ValueError("start_utc and end_utc must both carry a UTC offset, or both none")
        if end < start:
            raise ValueError(f"end_utc {self.end_utc} is before start_utc {self.start_utc}")


def utc_now() -> str:
    """Now in UTC, ISO 8601 with milliseconds."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def new_trial_id() -> str:
    return uuid.uuid4().hex[:12]


class TrialStore:
    """Append-only JSONL file of TrialRecords; every append is flushed and fsynced."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A store whose last write was cut short (a killed writer) has its partial line moved
        # to <store>.truncated before new records go in: reported, kept for inspection, and the
        # store itself stays strictly one whole record per line.
        if self.path.is_file() and self.path.stat().st_size > 0:
            data = self.path.read_bytes()
            if not data.endswith(b"\n"):
                cut = data.rfind(b"\n") + 1
                line_no = data.count(b"\n") + 1
                side = self.path.with_name(self.path.name + ".truncated")
                with side.open("ab") as g:
                    g.write(data[cut:] + b"\n")
                with self.path.open("r+b") as f:
                    f.truncate(cut)
                    os.fsync(f.fileno())
                warnings.warn(
                    f"{self.path}:{line_no}: truncated last record ({len(data) - cut} bytes) moved to {side}",
                    TruncatedRecordWarning,
                    stacklevel=2,
                )

    def append(self, record: TrialRecord) -> None:
        """Write one record as one line; it is on disk when this returns."""
        record.validate()
        line = json.dumps(to_dict(record), sort_keys=False) + "\n"
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> list[TrialRecord]:
        return read_trials(self.path)


def read_trials(path: str | Path) -> list[TrialRecord]:
    """Records of a JSONL store; errors name file and line, a truncated last line is warned about and skipped."""
    return [r for r, _ in _read_numbered(Path(path))]


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number a trial record may hold")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)  # one decoder: json.loads(**kw) builds one per call


def _read_numbered(path: Path, notes: list[str] | None = None) -> list[tuple[TrialRecord, int]]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TrialError(f"{path}: cannot read trial records ({e.strerror})") from None
    lines = data.split(b"\n")
    truncated_last = not data.endswith(b"\n") and bool(lines[-1])
    if not truncated_last:
        lines = lines[:-1]  # the empty piece after the final newline
    out: list[tuple[TrialRecord, int]] = []
    for i, raw in enumerate(lines, start=1):
        is_last = i == len(lines)
        if is_last and truncated_last:
            msg = (
                f"{path}:{i}: truncated last record ({len(raw)} bytes, no newline) skipped: the writer was interrupted"
            )
            warnings.warn(msg, TruncatedRecordWarning, stacklevel=2)
            if notes is not None:
                notes.append(msg)
            continue
        if not raw.strip():
            raise TrialError(f"{path}:{i}: empty line in a trial store (one JSON record per line)")
        try:
            obj = _DECODER.decode(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise TrialError(f"{path}:{i}: malformed trial record: {e}") from None
        if not isinstance(obj, dict):
            raise TrialError(f"{path}:{i}: a trial record must be a JSON object, got {type(obj).__name__}")
        try:
            out.append((from_dict(TrialRecord, obj, f"{path}:{i}"), i))
        except ConfigError as e:
            raise TrialError(str(e)) from None
    return out


@dataclass
class LoadedTrials:
    """Records of one or more stores, each with the file it came from."""

    records: list[TrialRecord]
    sources: list[Path]  # sources[i] is the store of records[i]
    lines: list[int]  # lines[i] is its line in that store
    notes: list[str] = field(default_factory=list)  # what loading dropped or found odd, for the report

    def where(self, i: int) -> str:
        return f"{self.sources[i]}:{self.lines[i]}"


def load_trials(paths: list[str | Path]) -> LoadedTrials:
    """Read every store (a directory means its *.jsonl files); repeated records are dropped with a note.

    The same store given twice is read once. A trial_id seen again with the same content is a
    duplicate (dropped, noted with both places); with different content it is an error naming
    both places. A store with no records beside others is noted.
    """
    out = LoadedTrials([], [], [])
    seen_files: dict[Path, Path] = {}
    first: dict[str, int] = {}  # trial_id -> index in out.records
    dropped: list[str] = []
    for p in paths:
        p = Path(p)
        files = sorted(p.glob("*.jsonl")) if p.is_dir() else [p]
        if p.is_dir() and not files:
            raise TrialError(f"{p}: no *.jsonl trial stores in this directory")
        for f in files:
            key = f.resolve()
            if key in seen_files:
                out.notes.append(f"{f}: the same trial store as {seen_files[key]}, given again; read once")
                continue
            seen_files[key] = f
            numbered = _read_numbered(f, out.notes)
            if not numbered:
                out.notes.append(f"{f}: holds no trial records")
            for rec, line in numbered:
                if rec.trial_id and rec.trial_id in first:
                    j = first[rec.trial_id]
                    if out.records[j] != rec:
                        raise TrialError(
                            f"{f}:{line}: trial_id '{rec.trial_id}' also at {out.where(j)} with different content; "
                            "a trial is recorded once"
                        )
                    dropped.append(f"{f}:{line} (= {out.where(j)})")
                    continue
                if rec.trial_id:
                    first[rec.trial_id] = len(out.records)
                out.records.append(rec)
                out.sources.append(f)
                out.lines.append(line)
    if dropped:
        more = f" and {len(dropped) - 5} more" if len(dropped) > 5 else ""
        out.notes.append(
            f"{len(dropped)} duplicate records (a trial_id seen before, same content) counted once: "
            + ", ".join(dropped[:5])
            + more
        )
    return out

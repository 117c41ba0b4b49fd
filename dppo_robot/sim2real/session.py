"""Hardware trial session: walks the operator through N trials per bundle (A/B interleaved).

Per trial: reset the scene (to the trial's initial condition), start (activates the policy node
through its lifecycle change_state service; the topics are recorded to the trial's MCAP),
stop (deactivates, the MCAP is finished and fsynced), then the operator labels the highest
phase reached, success and failure mode, and adds notes. The record is appended (fsynced) to
<out_dir>/trials.jsonl before the next trial starts, so killing the session loses no finished
trial. When a phase detector is configured, the phase is also detected from the recorded part
poses and a disagreement with the operator's label is flagged (shown and recorded).

Order: blocks of one trial per bundle, each block in a random order from `order_seed`
(balanced, randomised); the order is written to <out_dir>/session-<id>.json at the start.
The UI reads answers through an injected `ask(prompt) -> str` (default: the terminal), so a
script or a test can drive it; end of input (or a closed input) quits cleanly. Every trial that
ran is kept: when the input ends (or the operator quits) after START, the trial is stored with
phase_source "unlabelled" (success false, phase 0, its MCAP linked) and the session stops; the
report counts unlabelled trials apart from the rates and names them in its notes.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dppo_robot.sim2real.phases import PhaseDetector, get_phase_detector, load_phase_detector
from dppo_robot.sim2real.records import TrialError, TrialRecord, TrialStore, new_trial_id, utc_now
from dppo_robot.sim2real.runners import DEFAULT_PHASE_NAMES, BundleId, bundle_id
from dppo_robot.typed_config import ConfigError, load_yaml

DEFAULT_FAILURE_MODES = [
    "missed_grasp",
    "dropped_part",
    "collision",
    "stuck",
    "misaligned",
    "timeout",
    "e_stop",
    "other",
]


@dataclass
class RecordTopic:
    """A ROS topic recorded to each trial's MCAP."""

    topic: str
    type: str  # package/msg/Type


@dataclass
class SessionConfig:
    """A hardware trial session (YAML; paths relative to the file)."""

    task: str
    bundles: list[str]  # bundle directories; several = A/B(/C...) comparison, interleaved
    trials_per_bundle: int = 20
    randomness: str = ""
    initial_conditions: list[str] = field(default_factory=list)  # ids cycled per block ("" = none)
    phase_names: list[str] = field(default_factory=list)  # [] = the detector's, else start/success
    failure_modes: list[str] = field(default_factory=lambda: list(DEFAULT_FAILURE_MODES))
    policy_node: str = "/dppo_policy"  # lifecycle node activated at start, deactivated at stop
    record_topics: list[RecordTopic] = field(default_factory=list)
    part_pose_topic: str = ""  # PoseArray topic of part poses for automatic phase detection
    phase_detector: str = ""  # "module:attribute" PhaseDetector ("" = the task's registered one)
    out_dir: str = "trials/hardware"
    order_seed: int = 0
    blind: bool = False  # show "policy A/B" instead of bundle names
    service_timeout_s: float = 5.0

    def validate(self) -> None:
        if not self.bundles:
            raise ValueError("bundles must name at least one policy bundle")
        if self.trials_per_bundle < 1:
            raise ValueError(f"trials_per_bundle must be >= 1, got {self.trials_per_bundle}")
        if self.part_pose_topic and self.part_pose_topic not in [t.topic for t in self.record_topics]:
            raise ValueError(f"part_pose_topic '{self.part_pose_topic}' must be one of record_topics")
        if self.phase_names and len(self.phase_names) < 2:
            raise ValueError("phase_names needs at least 2 names (names[0] = nothing done yet)")


def load_session_config(path: str | Path) -> SessionConfig:
    """Load a session YAML; bundle and output paths are resolved against its folder."""
    path = Path(path)
    cfg = load_yaml(SessionConfig, path)
    base = path.resolve().parent
    cfg.bundles = [str((base / b).resolve()) if not Path(b).is_absolute() else b for b in cfg.bundles]
    if not Path(cfg.out_dir).is_absolute():
        cfg.out_dir = str((base / cfg.out_dir).resolve())
    return cfg


def interleaved_order(n_bundles: int, trials_per_bundle: int, seed: int) -> list[int]:
    """Bundle index of each trial: blocks holding each bundle once, each block shuffled (seeded)."""
    rng = random.Random(seed)
    order: list[int] = []
    for _ in range(trials_per_bundle):
        block = list(range(n_bundles))
        rng.shuffle(block)
        order.extend(block)
    return order


class Activator(Protocol):
    def activate(self) -> None: ...

    def deactivate(self) -> None: ...


class Recorder(Protocol):
    def start(self, path: Path) -> None: ...

    def stop(self) -> Any: ...


class DryRunActivator:
    """No policy node: says what would be done."""

    def __init__(self, say: Callable[[str], None], node: str) -> None:
        self.say, self.node = say, node

    def activate(self) -> None:
        self.say(f"[dry run] would activate {self.node} (lifecycle change_state: activate)")

    def deactivate(self) -> None:
        self.say(f"[dry run] would deactivate {self.node}")


class QuitSessionError(Exception):
    """The operator ended the session."""


class TrialSession:
    """The operator loop (see the module docstring)."""

    def __init__(
        self,
        cfg: SessionConfig,
        ask: Callable[[str], str],
        say: Callable[[str], None],
        activator: Activator,
        recorder: Recorder | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = cfg
        self.ask, self.say = ask, say
        self.activator, self.recorder = activator, recorder
        self.clock = clock
        self.bundles: list[BundleId] = [bundle_id(b) for b in cfg.bundles]
        self.detector: PhaseDetector | None = (
            load_phase_detector(cfg.phase_detector, "session config")
            if cfg.phase_detector
            else get_phase_detector(cfg.task)
        )
        if cfg.phase_names:
            self.phase_names = list(cfg.phase_names)
        elif self.detector is not None:
            self.phase_names = list(self.detector.names)
        else:
            self.phase_names = list(DEFAULT_PHASE_NAMES)
        if self.detector is not None and len(self.detector.names) != len(self.phase_names):
            raise TrialError(
                f"session config: phase_names {self.phase_names} and the phase detector's {list(self.detector.names)} "
                "differ in length"
            )
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.store = TrialStore(self.out / "trials.jsonl")
        self.session_id = f"hw-{time.strftime('%Y%m%dT%H%M%S')}-{new_trial_id()[:4]}"
        self.order = interleaved_order(len(self.bundles), cfg.trials_per_bundle, cfg.order_seed)
        self.unlabelled: list[TrialRecord] = []  # trials that ran but were stored unlabelled (input ended)

    def _label(self, i: int) -> str:
        b = self.bundles[i]
        return f"policy {chr(ord('A') + i)}" if self.cfg.blind else f"{b.name} ({b.sha256[:8]})"

    def _write_session_file(self) -> Path:
        path = self.out / f"session-{self.session_id}.json"
        info = {
            "session": self.session_id,
            "task": self.cfg.task,
            "started_utc": utc_now(),
            "order_seed": self.cfg.order_seed,
            "order": [self.bundles[i].name for i in self.order],
            "bundles": [b.__dict__ for b in self.bundles],
            "phase_names": self.phase_names,
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2))
        os.replace(tmp, path)
        return path

    def _prompt(self, text: str) -> str:
        try:
            ans = self.ask(text)
        except (EOFError, OSError, RuntimeError, ValueError):  # end of input, or input closed / lost
            raise QuitSessionError from None
        ans = ans.strip()
        if ans.lower() in ("q", "quit"):
            raise QuitSessionError
        return ans

    def _choose_phase(self) -> int:
        menu = ", ".join(f"{k} {n}" for k, n in enumerate(self.phase_names))
        while True:
            ans = self._prompt(f"highest phase reached? [{menu}]: ")
            if ans.isdigit() and 0 <= int(ans) < len(self.phase_names):
                return int(ans)
            if ans in self.phase_names:
                return self.phase_names.index(ans)
            self.say(f"  please answer a number 0-{len(self.phase_names) - 1} or a phase name")

    def _yes_no(self, text: str, default: bool) -> bool:
        while True:
            ans = self._prompt(f"{text} [{'Y/n' if default else 'y/N'}]: ").lower()
            if not ans:
                return default
            if ans in ("y", "yes", "n", "no"):
                return ans.startswith("y")
            self.say("  please answer y or n")

    def _failure_mode(self) -> str:
        menu = ", ".join(f"{k + 1} {m}" for k, m in enumerate(self.cfg.failure_modes))
        ans = self._prompt(f"failure mode? [{menu}, or a new tag]: ")
        if ans.isdigit() and 1 <= int(ans) <= len(self.cfg.failure_modes):
            return self.cfg.failure_modes[int(ans) - 1]
        return ans.replace(" ", "_") or "unlabelled"

    def _labels(self, last: int) -> tuple[int, bool, str, str]:
        """The operator's phase, success, failure mode and notes (success exactly when the last phase)."""
        while True:
            phase = self._choose_phase()
            success = self._yes_no("success?", default=phase == last)
            if success == (phase == last):
                break
            self.say(
                f"  a success reaches the last phase ({last} {self.phase_names[last]}) and a failure does not; "
                "please answer again"
            )
        failure = "" if success else self._failure_mode()
        notes = self._prompt("notes (Enter for none): ")
        return phase, success, failure, notes

    def run(self) -> list[TrialRecord]:
        """Run the session; returns the records written (also on quit)."""
        self._write_session_file()
        done: list[TrialRecord] = []
        total = len(self.order)
        ics = self.cfg.initial_conditions
        self.say(f"session {self.session_id}: {total} trials of task '{self.cfg.task}', records in {self.store.path}")
        try:
            for t, bi in enumerate(self.order):
                ic = ics[(t // len(self.bundles)) % len(ics)] if ics else ""
                rec = self._trial(t, total, bi, ic)
                if rec is not None:
                    done.append(rec)
        except QuitSessionError:
            extra = f" (+{len(self.unlabelled)} unlabelled, kept)" if self.unlabelled else ""
            self.say(f"session ended by the operator after {len(done)} recorded trials{extra}")
        return done

    def _trial(self, t: int, total: int, bi: int, ic: str) -> TrialRecord | None:
        b = self.bundles[bi]
        self.say(f"\n=== trial {t + 1}/{total}: {self._label(bi)}" + (f", initial condition {ic}" if ic else ""))
        self._prompt("reset the scene" + (f" to {ic}" if ic else "") + ", then press Enter (q = quit): ")
        self._prompt("press Enter to START the policy: ")
        trial_id = new_trial_id()
        mcap_rel = f"mcap/{trial_id}.mcap"
        if self.recorder is not None:
            self.recorder.start(self.out / mcap_rel)
        start_utc, t0 = utc_now(), self.clock()
        self.activator.activate()
        self.say(f"RUNNING trial {t + 1} (recording {mcap_rel if self.recorder else 'off'})")
        quit_while_running = False
        try:
            self._prompt("press Enter to STOP: ")
        except QuitSessionError:
            quit_while_running = True  # the trial ran: stop it, then keep it (unlabelled)
        finally:
            # the robot stops and the recording is closed whatever the answer (a quit included)
            self.activator.deactivate()
            duration, end_utc = self.clock() - t0, utc_now()
            summary = self.recorder.stop() if self.recorder is not None else None
        counts = "" if summary is None else ", ".join(f"{k}: {v}" for k, v in summary.messages.items())
        self.say(f"STOPPED trial {t + 1} after {duration:.1f} s" + (f" (messages {counts})" if counts else ""))
        last = len(self.phase_names) - 1
        auto = None
        if self.detector is not None and summary is not None:
            auto = min(max(int(self.detector.detect(summary.part_poses)), 0), last)
        ran = dict(
            bundle_name=b.name,
            bundle_sha256=b.sha256,
            setting="hardware",
            task=self.cfg.task,
            phase_names=list(self.phase_names),
            duration_s=round(duration, 3),
            start_utc=start_utc,
            end_utc=end_utc,
            randomness=self.cfg.randomness,
            initial_condition=ic,
            log_path=mcap_rel if summary is not None else "",
            trial_id=trial_id,
            session=self.session_id,
            trial_index=t,
            bundle_path=b.path,
            auto_phase=auto,
        )
        try:
            if quit_while_running:
                raise QuitSessionError
            phase, success, failure, notes = self._labels(last)
        except QuitSessionError:
            rec = TrialRecord(
                **ran,
                success=False,
                phase_reached=0,
                phase_name=self.phase_names[0],
                failure_mode="unlabelled",
                notes="input ended before the trial was labelled",
                phase_source="unlabelled",
            )
            self.store.append(rec)
            self.unlabelled.append(rec)
            hint = f" (label it from {rec.log_path})" if rec.log_path else ""
            self.say(f"trial {t + 1} ran but was not labelled: stored as unlabelled{hint}")
            raise
        if auto is not None and auto != phase:
            self.say(
                f"  ! phase disagreement: operator {phase} ({self.phase_names[phase]}), detected from part poses "
                f"{auto} ({self.phase_names[min(auto, last)]}); flagged in the record"
            )
        rec = TrialRecord(
            **ran,
            success=success,
            phase_reached=phase,
            phase_name=self.phase_names[phase],
            failure_mode=failure,
            notes=notes,
            phase_source="operator",
            phase_disagreement=auto is not None and auto != phase,
        )
        self.store.append(rec)
        self.say(f"recorded trial {t + 1}: {'success' if success else 'failure'}, phase {phase} {rec.phase_name}")
        return rec


def check_session_config(path: str | Path) -> SessionConfig:
    """Load and check a session config (bundles exist and are readable); errors name the file."""
    try:
        cfg = load_session_config(path)
    except ConfigError as e:
        raise TrialError(str(e)) from None
    for b in cfg.bundles:
        try:
            bundle_id(b)
        except ConfigError as e:
            raise TrialError(f"{path}: bundle {b}: {e}") from None
    return cfg

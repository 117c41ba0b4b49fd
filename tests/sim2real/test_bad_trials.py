"""Trial stores and the hardware session never let bad input pass silently (issue 18, findings 3, 7, 8):
duplicates counted once with a note, impossible values refused at file:line, empty stores and truncated
lines noted in the report, and every trial that ran kept (unlabelled) when the operator's input ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from dppo_robot.sim2real.records import TrialError, TrialStore, TruncatedRecordWarning, load_trials, read_trials
from dppo_robot.sim2real.report import analyse, write_report
from dppo_robot.sim2real.session import DryRunActivator, TrialSession, load_session_config
from dppo_robot.typed_config import to_dict
from tests.sim2real.test_records import rec
from tests.sim2real.test_session import scripted, write_config

REPO = Path(__file__).resolve().parents[2]


def _store(path: Path, records) -> Path:
    s = TrialStore(path)
    for r in records:
        s.append(r)
    return path


def _arm(data: dict) -> tuple[int, int]:
    (arm,) = data["arms"]
    return arm["successes"], arm["trials"]


# ------------------------------------------------------------------ finding 3: duplicates
def test_the_same_store_twice_is_counted_once_with_a_note(tmp_path):
    recs = [rec(success=i % 4 == 0, trial_id=f"t{i}", failure_mode="" if i % 4 == 0 else "x") for i in range(20)]
    path = _store(tmp_path / "a.jsonl", recs)
    once = analyse(load_trials([path]))
    twice = analyse(load_trials([path, path]))
    assert _arm(once) == _arm(twice) == (5, 20)
    assert twice["arms"][0]["wilson"] == once["arms"][0]["wilson"]
    assert any("given again; read once" in n for n in twice["notes"])


def test_repeated_trial_ids_are_counted_once_and_conflicts_refused(tmp_path):
    recs = [rec(success=i % 4 == 0, trial_id=f"t{i}", failure_mode="" if i % 4 == 0 else "x") for i in range(20)]
    a = _store(tmp_path / "a.jsonl", recs)
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(a.read_bytes())  # a copied store: same records under another name
    data = analyse(load_trials([a, copy]))
    assert _arm(data) == (5, 20)
    assert any("20 duplicate records (a trial_id seen before, same content) counted once" in n for n in data["notes"])
    lines = a.read_text().splitlines()
    (tmp_path / "dup_in_one.jsonl").write_text("\n".join([*lines, lines[0]]) + "\n")
    assert _arm(analyse(load_trials([tmp_path / "dup_in_one.jsonl"]))) == (5, 20)
    other = json.loads(lines[0])
    other["notes"] = "changed"
    (tmp_path / "conflict.jsonl").write_text(json.dumps(other) + "\n")
    with pytest.raises(TrialError, match="conflict.jsonl:1: trial_id 't0' also at .*a.jsonl:1 with different content"):
        load_trials([a, tmp_path / "conflict.jsonl"])


# ------------------------------------------------------------------ finding 8: impossible values
def _bad_line(tmp_path: Path, change) -> Path:
    good = to_dict(rec(success=True, trial_id="x1"))
    change(good)
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(to_dict(rec(success=False, trial_id="x0"))) + "\n" + json.dumps(good) + "\n")
    return path


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda d: d.update(duration_s=float("nan")), "NaN is not a number a trial record may hold"),
        (lambda d: d.update(duration_s=float("inf")), "Infinity is not a number a trial record may hold"),
        (lambda d: d.update(duration_s=-1.0), "duration_s must be finite and >= 0"),
        (lambda d: d.update(phase_reached=0, phase_name="start"), "success true with phase_reached 0"),
        (lambda d: d.update(success=False, failure_mode="x"), "success false with phase_reached 1"),
        (lambda d: d.update(end_utc="2020-01-01T00:00:00+00:00"), "end_utc .* is before start_utc"),
        (lambda d: d.update(end_utc="2999-01-01T00:00:00"), "both carry a UTC offset"),
        (lambda d: d.update(auto_phase=7), "auto_phase 7 is outside the phases 0..1"),
        (lambda d: d.update(steps=-3), "steps must be >= 0"),
        (lambda d: d.update(phase_names=["start", "start"]), "phase_names needs >= 2 distinct names"),
    ],
)
def test_impossible_values_are_refused_with_file_and_line(tmp_path, change, message):
    path = _bad_line(tmp_path, change)
    with pytest.raises(TrialError, match=message) as e:
        read_trials(path)
    assert f"{path}:2" in str(e.value) and "\n" not in str(e.value)


def test_empty_store_beside_a_real_one_and_truncated_line_are_noted_in_the_report(tmp_path):
    real = _store(tmp_path / "real.jsonl", [rec(trial_id="a"), rec(success=False, trial_id="b", failure_mode="x")])
    (tmp_path / "empty.jsonl").write_text("")
    with open(real, "a") as f:
        f.write('{"bundle_name": "po')  # a killed writer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedRecordWarning)
        files = write_report([real, tmp_path / "empty.jsonl"], tmp_path / "report")
    data = json.loads(files["json"].read_text())
    assert any("empty.jsonl: holds no trial records" in n for n in data["notes"])
    assert any("real.jsonl:3: truncated last record" in n for n in data["notes"])
    md = files["markdown"].read_text()
    assert "holds no trial records" in md and "truncated last record" in md


# ------------------------------------------------------------------ finding 7: the session keeps every trial
class FileRecorder:
    """Hardware-boundary fake: writes the trial's file at start like the MCAP recorder does."""

    def start(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"mcap")
        self.path = path

    def stop(self):
        return SimpleNamespace(messages={"/obs": 3}, part_poses=[])


@pytest.mark.parametrize(
    "answers,where",
    [
        (["", "", "", "1", "", ""], "after one labelled trial, in trial 2's labelling"),
        (["", "", ""], "at the phase question"),
        (["", "", "", "0"], "at the success question"),
        (["", ""], "while the trial runs (at STOP)"),
        (["", "", "", "q"], "the operator quits while labelling"),
    ],
)
def test_input_ending_after_start_keeps_the_trial_unlabelled(tmp_path, bundle, answers, where):
    if len(answers) == 6:
        answers = [*answers, "", "", ""]  # trial 2: reset, start, stop; then the input ends
    cfg = load_session_config(write_config(tmp_path / "s.yaml", [bundle]))
    said: list[str] = []
    s = TrialSession(cfg, scripted(answers), said.append, DryRunActivator(said.append, "/p"), FileRecorder())
    done = s.run()
    stored = read_trials(tmp_path / "out" / "trials.jsonl")
    assert len(stored) == len(done) + 1, where
    last = stored[-1]
    assert last.phase_source == "unlabelled" and not last.success and last.phase_reached == 0
    assert (tmp_path / "out" / last.log_path).is_file()  # its MCAP is linked, not orphaned
    mcaps = sorted(p.name for p in (tmp_path / "out" / "mcap").iterdir())
    assert mcaps == sorted(Path(r.log_path).name for r in stored)
    assert any("stored as unlabelled" in x for x in said)
    if done:
        data = analyse(load_trials([tmp_path / "out" / "trials.jsonl"]))
        assert _arm(data) == (1, 1)  # the unlabelled trial is not in the rate ...
        assert any("1 trials ran but were never labelled" in n for n in data["notes"])  # ... and named


def test_inconsistent_labels_are_asked_again(tmp_path, bundle):
    cfg = load_session_config(write_config(tmp_path / "s.yaml", [bundle]))
    said: list[str] = []
    answers = ["", "", "", "0", "y", "1", "", ""]  # phase 0 + success: refused, asked again
    s = TrialSession(cfg, scripted(answers), said.append, DryRunActivator(said.append, "/p"), None)
    (r,) = s.run()
    assert r.success and r.phase_reached == 1
    assert any("please answer again" in x for x in said)


@pytest.mark.parametrize("stdin", ["closed", "devnull"])
def test_trials_run_with_closed_or_empty_input_stops_cleanly(tmp_path, bundle, stdin):
    cfg = write_config(tmp_path / "s.yaml", [bundle])
    cmd = [sys.executable, "-m", "dppo_robot", "trials", "run", str(cfg), "--dry-run", "--no-record"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if stdin == "closed":
        r = subprocess.run(
            ["bash", "-c", 'exec 0<&-; exec "$@"', "bash", *cmd], capture_output=True, text=True, cwd=REPO, env=env
        )
    else:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=REPO, env=env)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "session ended by the operator after 0" in r.stdout
    assert yaml.safe_load(cfg.read_text())["trials_per_bundle"] == 2

"""Trial records: append-only JSONL store, strict reading, truncated last lines, task mixing."""

from __future__ import annotations

import json
import warnings

import pytest

from dppo_robot.sim2real.records import (
    TrialError,
    TrialRecord,
    TrialStore,
    TruncatedRecordWarning,
    load_trials,
    read_trials,
    utc_now,
)
from dppo_robot.sim2real.report import analyse


def rec(task: str = "lift", success: bool = True, setting: str = "sim", **kw) -> TrialRecord:
    names = kw.pop("phase_names", ["start", "success"])
    phase = kw.pop("phase_reached", int(success))
    return TrialRecord(
        bundle_name=kw.pop("bundle_name", "pol"),
        bundle_sha256=kw.pop("bundle_sha256", "ab" * 32),
        setting=setting,
        task=task,
        success=success,
        phase_reached=phase,
        phase_name=names[phase],
        phase_names=names,
        duration_s=1.5,
        start_utc=utc_now(),
        end_utc=utc_now(),
        **kw,
    )


def test_records_round_trip_and_every_append_is_on_disk(tmp_path):
    store = TrialStore(tmp_path / "t.jsonl")
    a, b = rec(seed=3, notes="ok"), rec(success=False, failure_mode="dropped_part")
    store.append(a)
    store.append(b)
    assert store.path.read_text().count("\n") == 2
    assert read_trials(store.path) == [a, b]


def test_truncated_last_line_is_reported_with_file_and_line_and_skipped(tmp_path):
    path = tmp_path / "t.jsonl"
    store = TrialStore(path)
    store.append(rec())
    store.append(rec(success=False))
    with path.open("a") as f:
        f.write(json.dumps({"bundle_name": "pol", "setting": "sim"})[:25])  # a write cut short by a kill
    with pytest.warns(TruncatedRecordWarning, match=rf"{path}:3: truncated last record"):
        assert len(read_trials(path)) == 2
    # reopening the store moves the partial line aside (reported) and appends cleanly after it
    with pytest.warns(TruncatedRecordWarning, match=r":3: truncated last record \(25 bytes\) moved to"):
        store = TrialStore(path)
    store.append(rec())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_trials(path)) == 3
    assert (tmp_path / "t.jsonl.truncated").read_text().startswith('{"bundle_name"')


def test_malformed_and_unknown_fields_are_errors_naming_file_and_line(tmp_path):
    path = tmp_path / "t.jsonl"
    TrialStore(path).append(rec())
    good = path.read_text()
    path.write_text(good + "{not json}\n" + good)
    with pytest.raises(TrialError, match=rf"{path}:2: malformed trial record"):
        read_trials(path)
    bad = json.loads(good)
    bad["sucess"] = True
    path.write_text(good + good + json.dumps(bad) + "\n")
    with pytest.raises(TrialError, match=rf"{path}:3: unknown field 'sucess'; did you mean 'success'"):
        read_trials(path)
    bad = json.loads(good)
    bad["setting"] = "real"
    path.write_text(json.dumps(bad) + "\n")
    with pytest.raises(TrialError, match=rf"{path}:1: field 'setting': 'real' is not one of"):
        read_trials(path)
    bad = json.loads(good)
    bad["phase_reached"] = 0
    path.write_text(json.dumps(bad) + "\n")
    with pytest.raises(TrialError, match=rf"{path}:1: phase_reached 0 \('success'\) does not match"):
        read_trials(path)


def test_mixing_tasks_in_one_comparison_names_the_files(tmp_path):
    a, b = tmp_path / "lift_sim.jsonl", tmp_path / "can_hw.jsonl"
    TrialStore(a).append(rec("lift"))
    TrialStore(b).append(rec("can", setting="hardware"))
    with pytest.raises(TrialError, match=rf"different tasks.*task 'can' in {b}.*task 'lift' in {a}"):
        analyse(load_trials([a, b]))
    c = tmp_path / "lift_hw.jsonl"
    TrialStore(c).append(rec("lift", setting="hardware", phase_names=["start", "grasp", "lift"], phase_reached=2))
    with pytest.raises(TrialError, match=rf"phase names .* at {a}:1 and .* at {c}:1 differ"):
        analyse(load_trials([a, c]))
    empty = tmp_path / "empty.jsonl"
    empty.touch()
    with pytest.raises(TrialError, match=r"no trial records to report \(n = 0\)"):
        analyse(load_trials([empty]))


def test_analysis_of_a_gap_and_rank_agreement(tmp_path):
    path = tmp_path / "t.jsonl"
    store = TrialStore(path)
    rates = {"p1": (18, 6), "p2": (12, 10), "p3": (6, 2)}  # successes of 20 in sim, in hardware
    for name, (ks, kh) in rates.items():
        for i in range(20):
            store.append(rec(success=i < ks, bundle_name=name))
            store.append(
                rec(success=i < kh, bundle_name=name, setting="hardware", failure_mode="" if i < kh else "stuck")
            )
    data = analyse(load_trials([path]))
    assert [a["key"].split("@")[0] + "/" + a["setting"] for a in data["arms"]] == [
        "p1/sim", "p1/hardware", "p2/sim", "p2/hardware", "p3/sim", "p3/hardware",
    ]  # fmt: skip
    c = data["comparisons"][0]
    assert (c["bundle"], c["from"], c["to"]) == ("p1", "sim", "hardware")
    assert c["diff"] == pytest.approx(0.6) and c["resolved"] and c["fisher_p"] < 1e-3
    assert data["arms"][1]["failure_modes"] == {"stuck": 14}
    (ra,) = data["rank_agreement"]
    # real 0.3, 0.5, 0.1 vs sim 0.9, 0.6, 0.3: p1 and p2 swap, each violated by |0.3 - 0.5|; p3 by none
    assert ra["mmrv"] == pytest.approx(0.2 * 2 / 3)
    assert ra["pearson"] == pytest.approx(0.5)  # scipy.stats.pearsonr([0.9, 0.6, 0.3], [0.3, 0.5, 0.1])

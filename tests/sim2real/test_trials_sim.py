"""`trials sim`: seeded simulated trials of a real bundle, one record per trial, phases from the env."""

from __future__ import annotations

import collections

from dppo_robot.cli import main
from dppo_robot.envs.registry import default_task_config
from dppo_robot.sim2real.records import TrialStore, read_trials
from dppo_robot.sim2real.runners import bundle_id, run_sim_trials
from dppo_robot.train.evaluate import evaluate_bundle
from dppo_robot.train.job_config import EvalSettings
from tests.sim2real.phased_task import PHASES


def test_sim_trials_record_phases_and_agree_with_evaluate(tmp_path, bundle):
    task = default_task_config("phased_reach", cond_steps=2)
    store = TrialStore(tmp_path / "sim.jsonl")
    recs = run_sim_trials(bundle, task, 12, store, seed=5, n_envs=4)
    assert read_trials(store.path) == recs  # each appended as it ended
    bid = bundle_id(bundle)
    assert {(r.bundle_name, r.bundle_sha256, r.setting, r.task) for r in recs} == {
        ("policy_a", bid.sha256, "sim", "phased_reach")
    }
    assert all(r.phase_names == list(PHASES) and r.phase_source == "env" for r in recs)
    assert all(r.success == (r.phase_reached == 3) for r in recs)
    assert all(r.duration_s == r.steps / 10.0 for r in recs)
    # same episodes as `dppo-robot evaluate` of the bundle (same seeds, outcomes, phases)
    task4 = default_task_config("phased_reach", cond_steps=2, act_steps=4)
    ev = evaluate_bundle(bundle, task4, EvalSettings(n_episodes=12, n_envs=4, seed=5))
    assert [r.seed for r in recs] == ev.seeds
    assert [r.success for r in recs] == ev.outcomes
    assert [r.phase_reached for r in recs] == ev.phases


def test_trials_sim_command_with_worker_processes(tmp_path, bundle, capsys):
    out = tmp_path / "w.jsonl"
    rc = main(["trials", "sim", str(bundle), "--task", "reach2d", "--n", "6", "--workers", "2", "--envs", "3",
               "--out", str(out)])  # fmt: skip
    assert rc == 0
    recs = read_trials(out)
    assert len(recs) == 6 and collections.Counter(r.phase_names[1] for r in recs) == {"success": 6}
    assert sorted(r.seed for r in recs)[:3] == [0, 1, 2]
    assert "policy_a (sim, reach2d)" in capsys.readouterr().out
    assert main(["trials", "sim", str(tmp_path / "nope"), "--task", "reach2d", "--out", str(out)]) == 2


def test_records_carry_a_randomness_level_only_for_tasks_that_have_levels():
    import dppo_robot.envs  # noqa: F401  (registers the tasks)
    from dppo_robot.sim2real.runners import BundleId, EpisodeEnd, make_record

    ep = EpisodeEnd(1, True, 1.0, 10, None, None, "2026-11-23T00:00:00Z", "2026-11-23T00:00:01Z")
    bid = BundleId(name="b", sha256="0" * 64, path="b")
    lift = make_record(bid, default_task_config("lift"), "sim", ep, 0, "s")
    one_leg = make_record(bid, default_task_config("one_leg", randomness="med"), "sim", ep, 0, "s")
    assert lift.randomness == "" and one_leg.randomness == "med"

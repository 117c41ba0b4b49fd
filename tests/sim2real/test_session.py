"""Hardware trial session: scripted operator, A/B interleaving, lifecycle activation over real rclpy,
per-trial MCAP recording, and a session killed mid-trial (SIGKILL) that loses no finished trial."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from dppo_robot.sim2real.records import read_trials
from dppo_robot.sim2real.session import DryRunActivator, TrialSession, interleaved_order, load_session_config
from tests.sim2real.conftest import domain_id

REPO = Path(__file__).resolve().parents[2]


def scripted(answers: list[str]):
    it = iter(answers)

    def ask(prompt: str) -> str:
        try:
            return next(it)
        except StopIteration:
            raise EOFError from None

    return ask


def write_config(path: Path, bundles: list[Path], **kw) -> Path:
    cfg = {"task": "lift_parts", "bundles": [str(b) for b in bundles], "trials_per_bundle": 2, "out_dir": "out", **kw}
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_interleaved_order_is_balanced_randomised_and_seeded():
    order = interleaved_order(3, 10, seed=4)
    assert Counter(order) == {0: 10, 1: 10, 2: 10}
    assert all(sorted(order[i : i + 3]) == [0, 1, 2] for i in range(0, 30, 3))  # every block has each once
    assert order == interleaved_order(3, 10, seed=4) != interleaved_order(3, 10, seed=5)
    assert len({tuple(order[i : i + 3]) for i in range(0, 30, 3)}) > 1


def test_scripted_ab_session_writes_records_and_order(tmp_path, bundle, bundle_b):
    cfg = load_session_config(
        write_config(tmp_path / "s.yaml", [bundle, bundle_b], initial_conditions=["ic1", "ic2"], blind=True)
    )
    said: list[str] = []
    # per trial: reset, start, stop, phase, success?, [failure mode], notes
    answers = [*["", "", "", "1", "", "note"], *["", "", "", "success", "", ""], *["", "", "", "0", "n", "3", ""]]
    s = TrialSession(cfg, scripted(answers), said.append, DryRunActivator(said.append, cfg.policy_node), None)
    recs = s.run()  # the script ends in trial 4: the session stops there cleanly
    assert [r.trial_index for r in recs] == [0, 1, 2]
    assert read_trials(tmp_path / "out" / "trials.jsonl") == recs
    assert [r.phase_name for r in recs] == ["success", "success", "start"]
    assert [r.success for r in recs] == [True, True, False] and recs[2].failure_mode == "collision"
    assert [r.initial_condition for r in recs] == ["ic1", "ic1", "ic2"]
    assert recs[0].notes == "note" and all(r.setting == "hardware" and r.phase_source == "operator" for r in recs)
    assert {recs[0].bundle_name, recs[1].bundle_name} == {"policy_a", "policy_b"}  # one block = each once
    (session_file,) = (tmp_path / "out").glob("session-*.json")
    assert "order" in session_file.read_text()
    assert any("would activate" in x for x in said) and any("policy A" in x or "policy B" in x for x in said)
    assert any("ended by the operator after 3" in x for x in said)


def test_lifecycle_activator_drives_a_real_lifecycle_node(tmp_path):
    pytest.importorskip("rclpy")
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import Node as LifecycleNode

    from dppo_robot.sim2real.ros_io import LifecycleActivator, RosGraph

    dom = domain_id() + 1
    graph = RosGraph(dom)
    import rclpy
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx, domain_id=dom)
    node = LifecycleNode("fake_policy", context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    stop = threading.Event()
    th = threading.Thread(target=lambda: [ex.spin_once(timeout_sec=0.05) for _ in iter(stop.is_set, True)], daemon=True)
    th.start()
    try:
        act = LifecycleActivator(graph, "/fake_policy", timeout_s=10)
        assert act.state() == "unconfigured"
        act.activate()
        assert act.state() == "active"
        act.deactivate()
        assert act.state() == "inactive"
        act.activate()
        assert act.state() == "active"
    finally:
        stop.set()
        th.join(5)
        node.destroy_node()
        ctx.try_shutdown()
        graph.close()


def _publisher(dom: int, topic: str, stop: threading.Event, matched: threading.Event, errors: list) -> None:
    import rclpy
    from geometry_msgs.msg import Pose, PoseArray
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx, domain_id=dom)
    node = rclpy.create_node("fake_parts", context=ctx)
    pub = node.create_publisher(PoseArray, topic, 10)
    try:
        while not stop.is_set():
            if pub.get_subscription_count() > 0:
                matched.set()
            msg = PoseArray()
            p = Pose()
            p.position.z = 0.07  # part 0 lifted: phase 2 "lifted" for LIFT_DETECTOR
            msg.poses = [p, Pose()]
            msg.header.frame_id = "base"
            pub.publish(msg)
            time.sleep(0.02)
    except Exception as e:  # surfaced by the test
        errors.append(e)
    finally:
        node.destroy_node()
        ctx.try_shutdown()


def test_session_killed_mid_trial_keeps_finished_trials_and_their_mcaps(tmp_path, bundle):
    pytest.importorskip("rclpy")
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    dom = domain_id() + 2
    topic = "/s2r_test/part_poses"
    cfg = write_config(
        tmp_path / "s.yaml", [bundle], trials_per_bundle=3, part_pose_topic=topic,
        record_topics=[{"topic": topic, "type": "geometry_msgs/msg/PoseArray"}],
        phase_detector="tests.sim2real.phased_task:LIFT_DETECTOR",
    )  # fmt: skip
    stop, matched, errors = threading.Event(), threading.Event(), []
    pub = threading.Thread(target=_publisher, args=(dom, topic, stop, matched, errors), daemon=True)
    pub.start()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dppo_robot", "trials", "run", str(cfg), "--dry-run", "--domain-id", str(dom)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()

    def wait_for(text: str, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while not any(text in x for x in seen):
            try:
                seen.append(lines.get(timeout=max(0.01, end - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"no '{text}' in session output:\n{''.join(seen)}") from None

    def send(*answers: str) -> None:
        proc.stdin.write("".join(a + "\n" for a in answers))
        proc.stdin.flush()

    try:
        wait_for("trial 1/3")
        assert matched.wait(30), f"the session never subscribed to {topic} (publisher errors: {errors})"
        for t, (phase, success, extra) in enumerate([("2", "n", ["1"]), ("1", "n", ["other"])], start=1):
            wait_for(f"trial {t}/3")
            send("", "")
            wait_for(f"RUNNING trial {t}")
            time.sleep(1.0)  # messages flow into trial t's MCAP
            send("")
            wait_for(f"STOPPED trial {t}")
            send(phase, success, *extra, f"notes {t}")
            wait_for(f"recorded trial {t}")
        assert not errors
        wait_for("trial 3/3")
        send("", "")
        wait_for("RUNNING trial 3")
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)  # mid-trial: its MCAP is open, its record not written
        proc.wait(timeout=10)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        pub.join(5)
    assert proc.returncode == -signal.SIGKILL
    out = tmp_path / "out"
    recs = read_trials(out / "trials.jsonl")
    assert [r.trial_index for r in recs] == [0, 1]
    assert [r.phase_reached for r in recs] == [2, 1] and [r.notes for r in recs] == ["notes 1", "notes 2"]
    assert [r.auto_phase for r in recs] == [2, 2]
    assert [r.phase_disagreement for r in recs] == [False, True]  # operator said 1, the poses say 2
    assert any("phase disagreement" in x for x in seen)
    for r in recs:
        with (out / r.log_path).open("rb") as f:
            reader = make_reader(f, decoder_factories=[DecoderFactory()])
            assert reader.get_header().profile == "ros2"
            msgs = list(reader.iter_decoded_messages())
        assert len(msgs) > 10
        assert all(ch.topic == topic and ch.message_encoding == "cdr" for _, ch, _, _ in msgs)
        assert all(sc.name == "geometry_msgs/msg/PoseArray" and sc.encoding == "ros2msg" for sc, _, _, _ in msgs)
        decoded = msgs[0][3]
        assert decoded.poses[0].position.z == pytest.approx(0.07) and decoded.header.frame_id == "base"
    assert len(list((out / "mcap").glob("*.mcap"))) == 3  # the killed trial's partial file is left as is


def test_example_session_config_loads_strictly(tmp_path):
    from dppo_robot.sim2real.records import TrialError
    from dppo_robot.sim2real.session import check_session_config

    cfg = load_session_config(REPO / "sim2real" / "session_example.yaml")
    assert cfg.task == "one_leg" and len(cfg.bundles) == 2 and cfg.blind
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: lift\nbundles: [x]\ntrials_per_bundel: 3\n")
    with pytest.raises(
        TrialError, match=rf"{bad}: unknown field 'trials_per_bundel'; did you mean 'trials_per_bundle'"
    ):
        check_session_config(bad)
    bad.write_text(f"task: lift\nbundles: [{tmp_path / 'missing'}]\n")
    with pytest.raises(TrialError, match=rf"{bad}: bundle .*missing.*not found"):
        check_session_config(bad)

"""Gripper goal delivery (ROS-free): wait for the server, send, check the result, retry, give up.

The action server is the hardware boundary (franka_gripper; franka_msgs is not installable
here), so these tests drive GripperGoals with the answers a server gives."""

from __future__ import annotations

from dppo_robot.deploy.config import GripperConfig
from dppo_robot.deploy.gripper import GripperGoals


def goals(**kw) -> GripperGoals:
    return GripperGoals(GripperConfig(server_timeout_s=1.0, result_timeout_s=2.0, retries=2, **kw))


def test_goal_waits_for_the_server_then_succeeds_once():
    g = goals()
    g.command(True, 0.0)
    assert g.poll(0.5, server_ready=False) is None  # waiting, within the timeout
    closed, token = g.poll(0.6, server_ready=True)
    assert closed is True
    assert g.poll(0.7, server_ready=True) is None  # sent: not sent again
    g.on_response(token, True, 0.8)
    g.on_result(token, True, "", 1.0)
    assert g.done is True and g.current is None
    assert g.counters == {"sent": 1, "succeeded": 1, "failed": 0, "retried": 0, "gave_up": 0}
    g.command(True, 2.0)  # same side: nothing new
    assert g.current is None
    assert g.status["gripper.confirmed"] == "closed" and g.status["gripper.last_error"] == "none"


def test_missing_server_is_retried_then_given_up_with_the_reason():
    g = goals()
    g.command(False, 0.0)
    t = 0.0
    for _ in range(50):
        t += 0.25
        assert g.poll(t, server_ready=False) is None
    assert g.current is None and g.counters["gave_up"] == 1
    assert g.counters["failed"] == 3 and g.counters["retried"] == 2  # attempts 1..3 (retries = 2)
    assert "no gripper action server" in g.last_error and "gave up after 3 attempts" in g.last_error
    assert g.status["gripper.confirmed"] == "none"


def test_rejected_failed_and_silent_goals_are_sent_again():
    g = goals()
    g.command(True, 0.0)
    _, t1 = g.poll(0.0, True)
    g.on_response(t1, False, 0.1)  # rejected
    assert "rejected" in g.last_error and "retrying" in g.last_error
    _, t2 = g.poll(0.2, True)
    g.on_response(t2, True, 0.3)
    g.on_result(t2, False, "object not grasped", 0.5)  # the server reports failure
    assert "object not grasped" in g.last_error
    _, t3 = g.poll(0.6, True)
    g.on_response(t3, True, 0.7)
    assert g.poll(3.0, True) is None  # no result within result_timeout_s: a failure ...
    assert g.current is None and g.counters["gave_up"] == 1  # ... and the third attempt was the last
    assert g.counters["sent"] == 3 and "no gripper result" in g.last_error


def test_a_new_command_replaces_a_pending_goal_and_late_answers_are_ignored():
    g = goals()
    g.command(True, 0.0)
    _, old = g.poll(0.0, True)
    g.command(False, 0.1)  # the policy opened again before the grasp finished
    _, new = g.poll(0.2, True)
    g.on_result(old, True, "", 0.3)  # the grasp's late result: ignored
    assert g.done is None and g.current is not None and g.current.closed is False
    g.on_response(new, True, 0.3)
    g.on_result(new, True, "", 0.4)
    assert g.done is False and g.counters["succeeded"] == 1


def test_gripper_action_names_follow_the_namespace():
    c = GripperConfig(namespace="/fr3/franka_gripper")
    assert c.action_name(c.grasp_action) == "/fr3/franka_gripper/grasp"
    assert c.action_name(c.move_action) == "/fr3/franka_gripper/move"
    assert GripperConfig(namespace="").action_name("move") == "move"

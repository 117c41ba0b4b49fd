"""The ROS 2 stack (policy node, bridge, simulated Franka) over real Fast DDS on simulated time."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tests.ros.conftest import reach2d_config

pytestmark = pytest.mark.ros


def test_bundle_plays_whole_episodes_exactly_as_direct_simulation(ros_context, reach2d_bundle):
    from dppo_robot_ros.compose import SimStack

    from dppo_robot.envs.registry import default_task_config
    from dppo_robot.train.evaluate import evaluate_bundle
    from dppo_robot.train.job_config import EvalSettings

    cfg = reach2d_config()
    cfg.sim.task_overrides = {"reward": "dense"}  # every action shows in the return
    stack = SimStack(cfg, str(reach2d_bundle), ros_context)
    try:
        outs = stack.run(3)
        timeouts = dict(stack.sim.timeouts)
        stats = dict(stack.policy.stats)
    finally:
        stack.close()
    task = default_task_config("reach2d", reward="dense", cond_steps=2, act_steps=4)
    direct = evaluate_bundle(reach2d_bundle, task, EvalSettings(n_episodes=3, n_envs=1, seed=0))
    assert [o.seed for o in outs] == direct.seeds
    assert [o.length for o in outs] == direct.lengths
    np.testing.assert_allclose([o.ret for o in outs], direct.returns, rtol=1e-6)
    assert timeouts == {"tick": 0, "target": 0}
    # one chain every Ta = 4 ticks
    assert stats["chunks"] == sum(-(-o.length // 4) for o in outs)


def test_workspace_clip_is_applied_and_reported(ros_context, reach2d_bundle):
    from diagnostic_msgs.msg import DiagnosticArray
    from dppo_robot_ros.common import TARGET
    from dppo_robot_ros.compose import SimStack
    from geometry_msgs.msg import PoseStamped

    cfg = reach2d_config()
    cfg.bridge.safety.workspace_min_m = [-0.05, -1.6, -0.1]
    cfg.bridge.safety.workspace_max_m = [0.05, 1.6, 0.1]
    stack = SimStack(cfg, str(reach2d_bundle), ros_context)
    diags, xs = [], []
    stack.sim.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 50)
    stack.sim.create_subscription(PoseStamped, cfg.topics.target_pose, lambda m: xs.append(m.pose.position.x), TARGET)
    try:
        stack.run(1)
        time.sleep(0.2)
    finally:
        stack.close()
    assert stack.bridge.core.counters["clipped"] > 0
    assert xs and max(abs(x) for x in xs) <= 0.05 + 1e-9
    msgs = [s.message for d in diags for s in d.status]
    assert any("outside workspace" in m and "clipped" in m for m in msgs), msgs


def test_episodes_stop_cleanly_and_node_stats_are_consistent(ros_context, reach2d_bundle):
    from dppo_robot_ros.compose import SimStack

    stack = SimStack(reach2d_config(), str(reach2d_bundle), ros_context)
    stop = threading.Event()
    th = threading.Thread(target=stack.run, args=(50, stop))
    th.start()
    time.sleep(0.5)
    stop.set()
    th.join(timeout=10)
    try:
        assert not th.is_alive()
        assert stack.policy.stats["ticks"] > 0 and stack.bridge.published > 0
    finally:
        stack.close()


def test_a_trial_the_policy_holds_is_stopped_as_policy_held(ros_context, reach2d_bundle):
    from dppo_robot_ros.compose import SimStack

    cfg = reach2d_config()
    cfg.sim.obs_noise_std = 100.0  # every observation far out of the bundle's range: the policy holds
    cfg.sim.abort_after_hold_s = 0.5  # 5 ticks at 10 Hz
    stack = SimStack(cfg, str(reach2d_bundle), ros_context)
    try:
        (out,) = stack.run(1)
        reasons = dict(stack.policy.hold_reasons)
    finally:
        stack.close()
    assert out.aborted == "policy_held" and not out.success
    assert out.length < 10, out.length  # not the 40-step time limit
    assert any("out of range" in r for r in reasons), reasons

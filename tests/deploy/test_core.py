"""ROS-free deployment logic: history on the grid, chunks, bridge execution and safety, sim, camera."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace as Ns

import numpy as np
import pytest

from dppo_robot.deploy.action_map import ActionMapper, PoseTarget
from dppo_robot.deploy.bridge import BridgeCore, RobotMode
from dppo_robot.deploy.chunks import ChunkScheduler, TimedChunk
from dppo_robot.deploy.config import ActionMapping, BridgeConfig, DeployConfig, ObsSource, SafetyConfig, SimConfig
from dppo_robot.deploy.obs_history import ObsHistoryBuilder, Sample
from dppo_robot.deploy.pose_math import apply_world_rotvec
from dppo_robot.typed_config import ConfigError, from_dict

ROS_PKG = Path(__file__).resolve().parents[2] / "ros2_ws" / "src" / "dppo_robot"


def pose(t, x, y=0.0, z=0.0):
    return Sample(t, {"position": np.array([x, y, z]), "quat_xyzw": np.array([0, 0, 0, 1.0])})


def state(t, vals):
    return Sample(t, {"position": np.asarray(vals, float)}, tuple(f"goal_rel/{i}" for i in range(len(vals))))


def builder(**kw):
    srcs = [ObsSource("pos", "ee_pose", "position_xy"), ObsSource("goal_rel", "task_state")]
    for s in srcs:
        s.validate()
    return ObsHistoryBuilder(srcs, [2, 2], cond_steps=2, control_hz=10.0, **kw)


def test_history_on_grid_latest_before_and_pose_interpolated():
    b = builder()
    for t, x in ((0.0, 0.0), (0.15, 1.5), (0.25, 2.5)):
        b.add("ee_pose", pose(t, x))
    b.add("task_state", state(0.05, [1, 1]))
    b.add("task_state", state(0.12, [2, 2]))
    b.add("task_state", state(0.21, [3, 3]))  # after the newest grid time: not used
    r = b.assemble(0.2)
    assert r.ok, r.reason
    # grid 0.1 and 0.2: pose interpolated (x = 1.0, 2.0), task_state latest at or before
    np.testing.assert_allclose(r.obs, [[1.0, 0.0, 1, 1], [2.0, 0.0, 2, 2]], atol=1e-6)


def test_stale_missing_nan_and_range_refused():
    b = builder(obs_min=np.full(4, -1.0), obs_max=np.full(4, 1.0), range_margin=0.5)
    assert "no 'ee_pose' sample" in b.assemble(0.1).reason
    b.add("ee_pose", pose(0.0, 0.0))
    b.add("task_state", state(0.0, [0, 0]))
    r = b.assemble(0.5)
    assert not r.ok and "stale" in r.reason
    b.add("ee_pose", pose(0.5, np.nan))
    b.add("task_state", state(0.5, [0, 0]))
    b.add("ee_pose", pose(0.4, 0.0))
    b.add("task_state", state(0.4, [0, 0]))
    r = b.assemble(0.5)
    assert not r.ok and "non-finite" in r.reason and "pos" in r.reason
    for t in (0.7, 0.8):
        b.add("ee_pose", pose(t, 5.0))
        b.add("task_state", state(t, [0, 0]))
    r = b.assemble(0.8)
    assert not r.ok and "out of range" in r.reason and "'pos'" in r.reason


def test_range_span_floor_widens_narrow_slices_only():
    # slice 0 barely moved in the data (span 0.002), slice 1 spans 2
    lo, hi = np.array([0.0, -1.0, 0.0, 0.0]), np.array([0.002, 1.0, 1.0, 1.0])
    narrow = builder(obs_min=lo, obs_max=hi, range_margin=1.0)
    floored = builder(obs_min=lo, obs_max=hi, range_margin=1.0, range_min_span=0.1)
    for b in (narrow, floored):
        for t in (0.0, 0.1):
            b.add("ee_pose", pose(t, 0.05))  # 0.048 above the data range of slice 0
            b.add("task_state", state(t, [0.5, 0.5]))
    assert not narrow.assemble(0.1).ok
    assert floored.assemble(0.1).ok
    floored.add("ee_pose", pose(0.2, 0.2))  # beyond the floored margin (0.002 + 0.1)
    floored.add("task_state", state(0.2, [0.5, 0.5]))
    assert "out of range" in floored.assemble(0.2).reason


def test_scheduler_replans_after_ta_points():
    s = ChunkScheduler(horizon_steps=8, act_steps=4)
    assert s.due(0.0)
    s.accept(TimedChunk(0.0, 0.1, np.zeros((8, 2)), 1))
    assert [s.due(t) for t in (0.1, 0.2, 0.3, 0.4)] == [False, False, False, True]


def make_bridge(**safety):
    cfg = BridgeConfig(stream_hz=100.0, latency_s=0.0, safety=SafetyConfig(**safety) if safety else SafetyConfig())
    cfg.safety.workspace_min_m, cfg.safety.workspace_max_m = [-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]
    for k, v in safety.items():
        setattr(cfg.safety, k, v)
    mapper = ActionMapper(ActionMapping(position_slice="vel", position_scale_m=0.1), [("vel", 2)])
    b = BridgeCore(cfg, mapper, control_hz=10.0)
    b.on_pose(0.0, np.zeros(3), np.array([0, 0, 0, 1.0]))
    b.on_policy_tick(0.0)
    return b


def test_bridge_interpolates_drops_past_points_and_compensates_latency():
    b = make_bridge()
    b.on_chunk(TimedChunk(0.0, 0.1, np.array([[1.0, 0], [1.0, 0], [1.0, 0]], np.float32), 1, ["vel/0", "vel/1"]))
    out = b.tick(0.05)
    assert not out.hold and out.position[0] == pytest.approx(0.05)  # halfway to 0.1
    b.on_pose(0.1, np.array([0.1, 0, 0]), np.array([0, 0, 0, 1.0]))
    b.on_policy_tick(0.1)
    assert b.tick(0.15).position[0] == pytest.approx(0.15)
    b.cfg.latency_s = 0.04  # the target published at 0.16 is meant for 0.2
    out = b.tick(0.16)
    assert out.stamp_s == pytest.approx(0.2) and out.position[0] == pytest.approx(0.2)
    b.on_policy_tick(0.3)
    b.on_pose(0.3, np.array([0.3, 0, 0]), np.array([0, 0, 0, 1.0]))
    assert b.tick(0.31).hold  # past the chunk's last point: hold, never reuse past points


def test_bridge_workspace_clip_step_limit_and_holds():
    b = make_bridge(max_step_m=0.005)
    b.on_chunk(TimedChunk(0.0, 0.1, np.array([[1.0, 0]], np.float32), 1))
    out = b.tick(0.01)
    assert out.limited and np.linalg.norm(out.position) == pytest.approx(0.005)
    b = make_bridge()
    b.on_pose(0.0, np.array([0.95, 0, 0]), np.array([0, 0, 0, 1.0]))
    b.on_chunk(TimedChunk(0.0, 0.1, np.array([[1.0, 0]], np.float32), 1))
    out = b.tick(0.1)
    assert out.clipped and out.position[0] == pytest.approx(1.0) and "outside workspace" in b.last_clip
    assert b.tick(0.35).hold  # policy tick older than two control periods
    b.on_pose(0.35, np.array([0.95, 0, 0]), np.array([0, 0, 0, 1.0]))
    b.on_policy_tick(0.35, "'image:wrist' is stale")
    out = b.tick(0.36)
    assert out.hold and "policy holds" in out.reasons[0]


def test_bridge_stops_on_reflex_and_resumes_only_after_recovery():
    b = make_bridge()
    b.on_chunk(TimedChunk(0.0, 0.1, np.ones((4, 2), np.float32), 1))
    b.on_robot_mode(RobotMode.REFLEX)
    assert b.tick(0.05).stopped
    ok, msg = b.resume()
    assert not ok and "REFLEX" in msg
    b.on_robot_mode(RobotMode.MOVE)
    assert b.resume()[0]
    b.on_robot_mode(RobotMode.USER_STOPPED)
    assert b.tick(0.06).stopped and not b.chunks


def test_action_mapping_round_trip_pose_and_rotation():
    m = ActionMapper(
        ActionMapping(position_slice="p", rotation_slice="r", gripper_slice="g", position_scale_m=0.05),
        [("p", 3), ("r", 3), ("g", 1)],
    )
    a = np.array([0.3, -0.5, 1.0, 0.2, -0.1, 0.4, 0.7])
    q0 = np.array([0.1, 0.2, 0.3, 0.9]) / np.linalg.norm([0.1, 0.2, 0.3, 0.9])
    t = m.to_target(a, np.array([0.5, 0, 1]), q0)
    np.testing.assert_allclose(m.to_action(t, np.array([0.5, 0, 1]), q0), a, atol=1e-6)
    with pytest.raises(ValueError, match="bundle's action slices"):
        ActionMapper(ActionMapping(position_slice="nope"), [("p", 3)])


def test_deploy_config_loads_strictly():
    cfg = from_dict(DeployConfig, {"policy": {"obs": [{"name": "pos", "source": "ee_pose", "field": "position_xy"}]}})
    assert cfg.policy.obs[0].field == "position_xy"
    with pytest.raises(ConfigError, match="not one of"):
        from_dict(DeployConfig, {"policy": {"obs": [{"name": "pos", "source": "ee_pose", "field": "width"}]}})
    with pytest.raises(ConfigError, match="did you mean"):
        from_dict(DeployConfig, {"bridge": {"stream_hzz": 5}})
    for p in (ROS_PKG / "config").glob("*.yaml"):
        from dppo_robot.typed_config import load_yaml

        load_yaml(DeployConfig, p)


def test_sim_franka_follows_targets_with_any_registered_task():
    from dppo_robot.deploy.sim_franka import SimFranka

    sim = SimFranka(
        SimConfig(task="reach2d", ee_position_slice="pos", seed=3),
        ActionMapping(position_slice="vel", position_scale_m=0.1),
    )
    st = sim.reset(1.0)
    goal = st.ee_position + np.array([0.05, 0.1, 0.0])
    st2, done = sim.step(PoseTarget(goal, st.ee_quat))
    np.testing.assert_allclose(st2.ee_position[:2], goal[:2], atol=1e-6)
    assert st2.time_s == pytest.approx(1.1) and not done
    with pytest.raises(ValueError, match="not an observation slice"):
        SimFranka(SimConfig(task="reach2d", ee_position_slice="eef"), ActionMapping(position_slice="vel"))


def test_lockstep_with_obs_latency_needs_input_latency():
    from dppo_robot.deploy.config import PolicyNodeConfig
    from dppo_robot.deploy.sim_franka import SimFranka

    sim = SimFranka(
        SimConfig(task="reach2d", ee_position_slice="pos", obs_latency_s=0.02),
        ActionMapping(position_slice="vel", position_scale_m=0.1),
    )
    assert sim.published_lag_s == pytest.approx(0.1)  # 20 ms rounds up to one 10 Hz step
    policy = PolicyNodeConfig(lockstep=True, input_wait_s=2.0)
    with pytest.raises(ValueError, match=r"policy.input_latency_s >= 0.100"):
        sim.check_lockstep(policy)
    policy.input_latency_s = 0.1
    sim.check_lockstep(policy)
    # the delayed state published at t is the one from t - 0.1
    st = sim.reset(0.0)
    assert sim.published(st) is None
    st2, _ = sim.step(None)
    assert sim.published(st2).time_s == pytest.approx(0.0)


def test_sim_franka_aborts_an_episode_the_stack_holds():
    from dppo_robot.deploy.sim_franka import SimFranka

    cfg = SimConfig(task="reach2d", ee_position_slice="pos", seed=3, abort_after_hold_s=0.3)
    sim = SimFranka(cfg, ActionMapping(position_slice="vel", position_scale_m=0.1))
    st = sim.reset(0.0)
    target = PoseTarget(st.ee_position + np.array([0.01, 0.0, 0.0]), st.ee_quat)
    assert [sim.step(t)[1] for t in (None, None, target, None, None)] == [False] * 5  # a target resets the count
    _, done = sim.step(None)  # third held step in a row: 0.3 s at 10 Hz
    assert done and sim.outcome().aborted == "policy_held" and not sim.outcome().success
    sim.reset(1.0)
    assert sim.outcome().aborted == ""
    # the bridge streams a hold target while the policy holds: that counts as held too
    assert [sim.step(target, stack_held=True)[1] for _ in range(3)] == [False, False, True]
    assert sim.outcome().aborted == "policy_held"


def test_message_readers_work_on_plain_objects():
    sys.path.insert(0, str(ROS_PKG))
    from dppo_robot_ros import convert

    stamp = Ns(sec=3, nanosec=500_000_000)
    msg = Ns(header=Ns(stamp=stamp), pose=Ns(position=Ns(x=1, y=2, z=3), orientation=Ns(x=0, y=0, z=0, w=1)))
    s = convert.pose_sample(msg)
    assert s.stamp_s == 3.5 and s.values["position"].tolist() == [1, 2, 3]
    img = Ns(header=Ns(stamp=stamp), height=2, width=2, step=6, encoding="bgr8", data=bytes(range(12)))
    assert convert.image_array(img)[:, 0, 0].tolist() == [2, 1, 0]
    tf = [Ns(translation=Ns(x=i, y=-i, z=0.5), rotation=Ns(x=0, y=0, z=0, w=1)) for i in range(3)]
    pts = [Ns(transforms=[t], time_from_start=Ns(sec=0, nanosec=(i + 1) * 100_000_000)) for i, t in enumerate(tf)]
    t0, dt, offset, ch = convert.multidof_to_pose_chunk(Ns(header=Ns(stamp=stamp), joint_names=["ee"], points=pts))
    assert (t0, offset) == (3.5, 1) and dt == pytest.approx(0.1) and ch.positions[2].tolist() == [2, -2, 0.5]
    jpts = [Ns(positions=[0.04, 7.0], time_from_start=Ns(sec=0, nanosec=100_000_000))]
    jt = Ns(header=Ns(stamp=stamp), joint_names=["x", "fr3_finger_joint1"], points=jpts)
    assert convert.joint_trajectory_positions(jt, ["fr3_finger_joint1", "x"])[2].tolist() == [[7.0, 0.04]]
    with pytest.raises(ValueError, match="lacks joints"):
        convert.joint_trajectory_positions(jt, ["fr3_joint1"])


def test_camera_recording_synthesised_with_software_device(tmp_path):
    pytest.importorskip("pyrealsense2")
    from dppo_robot.deploy.camera import RealSenseCapture, synthesize_recording
    from dppo_robot.deploy.config import CameraConfig

    frames = [np.full((24, 32, 3), 10 * i, np.uint8) for i in range(4)]
    path = synthesize_recording(tmp_path / "rec.db3", frames, fps=30)
    cap = RealSenseCapture(CameraConfig(recording=str(path)))
    got = []
    while (f := cap.read(1000)) is not None:
        got.append(f)
    cap.close()
    assert [int(f.rgb[0, 0, 0]) for f in got] == [0, 10, 20, 30]
    assert np.diff([f.stamp_s for f in got]) == pytest.approx([1 / 30] * 3, abs=1e-6)
    assert got[0].intrinsics.width == 32


def test_absolute_chunk_executed_in_steps_gives_back_the_policys_delta_actions():
    """Lift-style delta_pose + rotation + gripper: actions -> absolute targets (the wire) -> the
    bridge's step rule from wherever the arm really is -> the task action the simulated Franka
    derives: the policy's own actions, whatever the tracking error."""
    from dppo_robot.deploy.action_map import (
        ActionMapper,
        PoseChunkMapper,
        chunk_targets,
        finger_to_gripper,
        gripper_to_finger,
        pose_rows,
    )
    from dppo_robot.deploy.config import ActionMapping

    m = ActionMapper(
        ActionMapping(position_slice="dp", rotation_slice="dr", gripper_slice="g"), [("dp", 3), ("dr", 3), ("g", 1)]
    )
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (8, 7))
    anchor_p, anchor_q = (
        np.array([0.1, -0.2, 1.0]),
        np.array([0.99, 0.0, 0.05, 0.1]) / np.linalg.norm([0.99, 0, 0.05, 0.1]),
    )
    ch = chunk_targets(m, actions, anchor_p, anchor_q)
    # absolute targets: the anchor plus the scaled steps so far
    np.testing.assert_allclose(ch.positions, anchor_p + 0.05 * np.cumsum(actions[:, :3], axis=0), atol=1e-12)
    fingers = gripper_to_finger(ch.gripper, 0.04)
    assert np.all((fingers >= 0) & (fingers <= 0.04))
    np.testing.assert_allclose(finger_to_gripper(fingers, 0.04), actions[:, 6], atol=1e-12)
    rows = pose_rows(ch)
    rows[:, 7] = finger_to_gripper(fingers, 0.04)
    steps, absolute = PoseChunkMapper("steps"), PoseChunkMapper("absolute")
    measured_p, measured_q = anchor_p, anchor_q
    for i in range(8):
        t = steps.to_target(rows[i], measured_p, measured_q)
        np.testing.assert_allclose(m.to_action(t, measured_p, measured_q), actions[i], atol=1e-6)
        a = absolute.to_target(rows[i], measured_p, measured_q)
        np.testing.assert_allclose(a.position, ch.positions[i])
        # the arm lags: it reaches 70 % of the step and a little rotation error
        measured_p = measured_p + 0.7 * (t.position - measured_p)
        measured_q = apply_world_rotvec(t.quat, np.array([0.01, -0.02, 0.0]))
    with pytest.raises(ValueError, match="steps or absolute"):
        PoseChunkMapper("delta")


def test_ik_model_matches_the_simulated_lift_and_solves_nearby_targets():
    """PandaIK (robosuite's Panda, mink) with sim_lift.yaml's base placement: its forward kinematics
    is the task's end-effector pose at the task's joints, and a target a few cm away is solved
    to tolerance within the joint limits."""
    from dppo_robot.deploy.config import DeployConfig
    from dppo_robot.deploy.ik import PandaIK
    from dppo_robot.deploy.pose_math import angle_between
    from dppo_robot.deploy.sim_franka import SimFranka
    from dppo_robot.typed_config import load_yaml

    cfg = load_yaml(DeployConfig, ROS_PKG / "config" / "sim_lift.yaml")
    sim = SimFranka(cfg.sim, cfg.action)
    try:
        st = sim.reset(0.0)
        ik = PandaIK(cfg.robot.base_pos_m, cfg.robot.base_quat_xyzw)
        p, q = ik.fk(st.joints)
        np.testing.assert_allclose(p, st.ee_position, atol=1e-6)
        assert angle_between(q, st.ee_quat) < 1e-5
        target_p = st.ee_position + np.array([0.03, -0.02, -0.05])
        target_q = apply_world_rotvec(st.ee_quat, np.array([0.0, 0.0, 0.2]))
        res = ik.solve(target_p, target_q, st.joints)
        assert res.converged, res
        p2, q2 = ik.fk(res.q)
        assert np.linalg.norm(p2 - target_p) < cfg.robot.ik_tol_m and angle_between(q2, target_q) < 1e-3
        lo, hi = ik.model.jnt_range[:7].T
        assert np.all((res.q >= lo) & (res.q <= hi))
        # the simulated Franka's joint follower: a joint target's pose is FK on the task's own model
        t = sim.joint_target_pose(res.q)
        np.testing.assert_allclose(t.position, target_p, atol=1e-4)
    finally:
        sim.close()

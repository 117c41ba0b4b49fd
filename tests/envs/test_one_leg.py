"""one_leg twin: IO spec vs the reference furniture layout, 6D actions, start ranges, seeding, thread, phases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import dppo_robot.envs  # noqa: F401  (registers tasks)
from dppo_robot.envs import TaskConfig, default_task_config, list_tasks, make_env, task_io_spec
from dppo_robot.envs.one_leg import geometry as G
from dppo_robot.envs.one_leg import phases as P
from dppo_robot.envs.one_leg.controller import (
    ARM_INERTIA,
    ARM_KP,
    ARM_KV,
    SITE_TO_EE,
    matrix_to_rot6d,
    parse_action,
    rot6d_to_matrix,
    site_to_ee,
)


@pytest.fixture(scope="module")
def env():
    e = make_env(default_task_config("one_leg"), seed=0)
    yield e
    e.close()


def _hold(env) -> np.ndarray:
    """Action that holds the current ee pose, gripper open."""
    pos, R = env.unwrapped.ee_pose()
    return np.concatenate([pos, matrix_to_rot6d(R), [-1.0]]).astype(np.float32)


def test_registered_with_reference_defaults():
    assert "one_leg" in list_tasks()
    cfg = default_task_config("one_leg")
    assert (cfg.max_episode_steps, cfg.cond_steps, cfg.act_steps, cfg.control_hz) == (700, 1, 8, 10.0)
    assert cfg.terminate_on_success and cfg.reward == "sparse" and cfg.randomness == "low"
    with pytest.raises(ValueError, match="randomness"):
        TaskConfig(name="one_leg", randomness="high").validate()
    assert TaskConfig().randomness == "low"  # other tasks keep their defaults


def test_spec_is_the_reference_furniture_spec():
    from dppo_robot.bundle.import_dppo import furniture_spec

    ours, ref = task_io_spec(default_task_config("one_leg")), furniture_spec("one_leg")
    assert (ours.obs_dim, ours.action_dim, ours.control_hz) == (58, 10, 10.0)
    for a, b in ((ours.obs, ref.obs), (ours.action, ref.action)):
        assert [(s.name, s.size, s.units, s.frame) for s in a] == [(s.name, s.size, s.units, s.frame) for s in b]
    pix = task_io_spec(default_task_config("one_leg", cameras=["wrist", "front"], image_size=64))
    assert pix.obs_dim == 16 and [(c.name, c.height) for c in pix.cameras] == [("wrist", 64), ("front", 64)]


def test_rot6d_and_action_mapping():
    rng = np.random.default_rng(0)
    R = Rotation.random(20, random_state=1).as_matrix()
    np.testing.assert_allclose(rot6d_to_matrix(matrix_to_rot6d(R)), R, atol=1e-12)
    np.testing.assert_allclose(matrix_to_rot6d(R[0]), R[0, :2].reshape(6))  # first two rows (pytorch3d)
    noisy = rot6d_to_matrix(matrix_to_rot6d(R) + rng.normal(0, 0.2, (20, 6)))
    np.testing.assert_allclose(noisy @ np.swapaxes(noisy, 1, 2), np.broadcast_to(np.eye(3), (20, 3, 3)), atol=1e-9)
    assert np.allclose(np.linalg.det(noisy), 1.0)
    # FurnitureBench hand frame: y = the fingers' axis = the grip site's x, z = approach
    np.testing.assert_allclose(site_to_ee(np.eye(3))[:, 1], [1, 0, 0])
    np.testing.assert_allclose(site_to_ee(np.eye(3))[:, 2], [0, 0, 1])
    a = np.concatenate([[2.0, 0.0, -1.0], matrix_to_rot6d(R[3]), [3.0]])
    pos, R_site, grip = parse_action(a)
    np.testing.assert_allclose(pos, [G.EE_POS_LIMITS[0, 1], 0.0, G.EE_POS_LIMITS[2, 0]])  # clipped to limits
    np.testing.assert_allclose(R_site, R[3] @ SITE_TO_EE.T, atol=1e-9)
    assert grip == 1.0
    for raw in rng.normal(0, 1, (20, 10)):  # any 6D values: the fast decode is rot6d_to_matrix's maths
        np.testing.assert_allclose(parse_action(raw)[1], rot6d_to_matrix(raw[3:9]) @ SITE_TO_EE.T, atol=1e-12)
    with pytest.raises(ValueError, match="10 values"):
        parse_action(np.zeros(7))
    with pytest.raises(ValueError, match="non-finite"):
        parse_action(np.full(10, np.nan))


@pytest.mark.parametrize("level", ["low", "med"])
def test_start_states_stay_in_the_configured_ranges(level):
    lv = G.RANDOMNESS[level]
    rng = np.random.default_rng(3)
    for _ in range(200 if level == "low" else 50):
        s = G.sample_start(rng, lv)
        off = s.obstacle_pos - G.OBSTACLE_FRONT_TAG
        assert np.all(np.abs(off[:2]) <= lv.obstacle_offset) and off[2] == 0.0
        assert np.all(np.abs(s.joints - G.RESET_JOINTS) <= math.radians(lv.joint_noise_deg) + 1e-12)
        for name in G.PART_NAMES:
            d = s.part_pos[name] - G.RESET_POS_TAG[name]
            assert np.all(np.abs(d[:2]) <= lv.part_pos) and d[2] == 0.0
            assert abs(s.part_yaw[name]) <= math.radians(lv.part_yaw_deg)
            assert G.PARTS_POS_LIMITS_TAG[0, 0] <= s.part_pos[name][0] <= G.PARTS_POS_LIMITS_TAG[0, 1]
            assert G.PARTS_POS_LIMITS_TAG[1, 0] <= s.part_pos[name][1] <= G.PARTS_POS_LIMITS_TAG[1, 1]
            yaw = G.yaw_about_tag_z(s.part_rot[name], G.RESET_ORI_TAG[name])
            assert abs(yaw - s.part_yaw[name]) < 1e-9
    a, b = G.sample_start(np.random.default_rng(9), lv), G.sample_start(np.random.default_rng(9), lv)
    assert np.array_equal(a.joints, b.joints) and np.array_equal(a.obstacle_pos, b.obstacle_pos)


def test_reset_places_the_sampled_start(env):
    obs, info = env.reset(seed=5)
    e = env.unwrapped
    start = e.scene.start
    assert obs.shape == (58,) and obs.dtype == np.float32
    assert info["phase"] == 0 and info["phase_name"] == "start" and info["success"] is False
    parts = obs[16:].reshape(6, 7)
    for i, name in enumerate(G.PART_NAMES):
        np.testing.assert_allclose(parts[i, :3], start.part_pos[name], atol=1e-5)
        q = G.mat_to_quat_xyzw(start.part_rot[name])
        np.testing.assert_allclose(parts[i, 3:], q, atol=1e-5)
    np.testing.assert_allclose(parts[5, :3], start.obstacle_pos, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(parts[:, 3:], axis=1), 1.0, atol=1e-5)
    poses = [e.part_pose_world(i) for i in range(len(G.PART_NAMES))] + [e.obstacle_pose_world()]
    for i, (p, R) in enumerate(poses):  # the vectorised quaternions are the frame maths of geometry.py
        p_tag, R_tag = e.world_to_tag(p, R)
        np.testing.assert_allclose(parts[i], np.concatenate([p_tag, G.mat_to_quat_xyzw(R_tag)]), atol=1e-6)
    assert np.all(parts[:, 6] >= 0)  # w >= 0
    q = e.data.qpos[e.scene.arm_qpos_adr]
    np.testing.assert_allclose(q, start.joints, atol=1e-9)
    pos, R = e.ee_pose()
    np.testing.assert_allclose(obs[:3], pos, atol=1e-6)
    np.testing.assert_allclose(obs[3:9], matrix_to_rot6d(R), atol=1e-6)
    assert 0.0 <= obs[15] <= 0.081
    # the base tag: tag axes map to the robot's as documented (y_tag forward, z_tag down)
    np.testing.assert_allclose(G.tag_to_base([0, 0.1, 0]), G.TAG_IN_BASE + np.array([0.1, 0, 0]))
    np.testing.assert_allclose(G.base_to_tag(G.tag_to_base([0.03, 0.2, -0.01])), [0.03, 0.2, -0.01], atol=1e-12)


def test_same_seed_same_episode(env):
    def episode(seed):
        obs, _ = env.reset(seed=seed)
        hold = _hold(env)
        out = [obs]
        for t in range(8):
            a = hold.copy()
            a[:3] += [0.01 * t, -0.005 * t, 0.003 * t]
            a[9] = 1.0 if t > 4 else -1.0
            obs, *_ = env.step(a)
            out.append(obs)
        return np.stack(out)

    a, b = episode(11), episode(11)
    assert np.array_equal(a, b)
    assert not np.array_equal(a[0], episode(12)[0])


def test_arm_is_driven_by_mujoco_joint_impedance_actuators(env):
    """The model's arm actuators are the documented joint impedance, gravity compensated by MuJoCo."""
    e = env.unwrapped
    m, d, substeps = e.physics_handles()
    assert substeps == 50 and abs(m.opt.timestep * substeps - 0.1) < 1e-12
    sc = e.scene
    np.testing.assert_allclose(m.actuator_gainprm[sc.arm_act, 0], ARM_KP)
    bias = np.stack([np.zeros(7), -np.array(ARM_KP), -np.array(ARM_KV)], 1)
    np.testing.assert_allclose(m.actuator_biasprm[sc.arm_act, :3], bias)
    assert np.all(m.actuator_trnid[sc.arm_act, 0] == [m.dof_jntid[a] for a in sc.arm_dof_adr])
    assert np.all(m.jnt_actgravcomp[m.dof_jntid[sc.arm_dof_adr]] == 1)
    arm_bodies = np.unique(m.dof_bodyid[sc.arm_dof_adr])
    assert np.all(m.body_gravcomp[arm_bodies] == 1.0)
    # the gains' inertias are the model's at FurnitureBench's reset joints
    import mujoco

    scratch = mujoco.MjData(m)
    scratch.qpos[sc.arm_qpos_adr] = G.RESET_JOINTS
    mujoco.mj_forward(m, scratch)
    M = np.zeros((m.nv, m.nv))
    mujoco.mj_fullM(m, M, scratch.qM)
    np.testing.assert_allclose(np.diag(M)[sc.arm_dof_adr], ARM_INERTIA, rtol=0.01)


def test_a_step_is_mujocos_own_step(env):
    """Away from the thread, env.step = the IK's joint targets in ctrl, then raw mj_step over 50 substeps."""
    import mujoco

    env.reset(seed=7)
    e = env.unwrapped
    m, d, n = e.physics_handles()
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    before = np.empty(mujoco.mj_stateSize(m, spec))
    mujoco.mj_getState(m, d, before, spec)
    a = _hold(env)
    a[:3] += [0.02, -0.01, 0.02]
    a[9] = 1.0
    env.step(a)
    scratch = mujoco.MjData(m)
    mujoco.mj_setState(m, scratch, before, spec)
    scratch.ctrl[:] = d.ctrl  # the controls the step chose
    mujoco.mj_forward(m, scratch)
    mujoco.mj_step(m, scratch, nstep=n)
    assert np.array_equal(scratch.qpos, d.qpos) and np.array_equal(scratch.qvel, d.qvel)
    assert not np.array_equal(d.qpos, before[1 : 1 + m.nq])  # it moved


def test_tracks_an_absolute_target(env):
    """A 2.5 cm / 0.2 rad target is reached within 1 mm / 0.01 rad in 6 steps; holding does not drift."""
    env.reset(seed=3)
    e = env.unwrapped
    hold = _hold(env)
    for _ in range(3):
        env.step(hold)
    np.testing.assert_allclose(e.ee_pose()[0], hold[:3], atol=1e-4)
    target = hold.copy()
    target[:3] += [0.015, -0.01, 0.017]
    R_goal = Rotation.from_rotvec([0.0, 0.0, 0.2]).as_matrix() @ rot6d_to_matrix(hold[3:9])
    target[3:9] = matrix_to_rot6d(R_goal)
    for _ in range(6):
        obs, *_ = env.step(target)
    pos, R = e.ee_pose()
    assert np.linalg.norm(pos - target[:3]) < 1e-3, pos - target[:3]
    assert np.linalg.norm(Rotation.from_matrix(R @ R_goal.T).as_rotvec()) < 0.01
    np.testing.assert_allclose(obs[:3], pos, atol=1e-6)
    assert np.linalg.norm(obs[9:12]) < 0.02  # settled: ee velocity small


def test_thread_engages_and_screws_home(env):
    env.reset(seed=2)
    e = env.unwrapped
    sc, d = e.scene, e.data
    hold = _hold(env)
    hold[:3] += [0.0, 0.0, 0.1]  # keep the arm out of the way
    top_pos, top_R = e.part_pose_world(0)
    mouth, axis = P.hole_frame(top_pos, top_R)
    # leg4 upright over its hole, turned 30 deg, stud tip 10 mm above the mouth and 2 mm off-axis
    leg_R = top_R @ Rotation.from_euler("y", 30, degrees=True).as_matrix()
    tip_local = np.array([0.0, -G.LEG_HALF_LENGTH - G.PEG_LENGTH, 0.0])
    leg_pos = mouth + 0.010 * axis + 0.002 * top_R[:, 0] - leg_R @ tip_local
    adr = sc.part_qpos_adr[G.LEG_INDEX]
    x, y, z, w = G.mat_to_quat_xyzw(leg_R)
    d.qpos[adr : adr + 7] = [*leg_pos, w, x, y, z]
    sc.forward()
    for _ in range(6):  # falls onto the thread's first crest and engages
        _, r, term, _, info = env.step(hold)
    assert sc.thread_engaged and info["predicates"][3] and not info["success"] and r == 0.0
    bid = sc.part_body_ids[G.LEG_INDEX]

    def leg_height() -> float:  # leg centre above the boss top along the hole axis
        mouth, axis = P.hole_frame(*e.part_pose_world(0))
        return float((e.part_pose_world(G.LEG_INDEX)[0] - mouth) @ axis)

    depth = sc.thread_depth
    assert 0.0 <= depth < G.THREAD_TRAVEL / 2
    for force in (0.0, 20.0):  # neither its weight nor a 20 N push screws it in (self-locking)
        for _ in range(5):
            d.xfrc_applied[bid, :3] = -force * axis
            env.step(hold)
        assert abs(sc.thread_depth - depth) < 2e-4
        assert abs(leg_height() - sc._leg_height(-depth * 2 * math.pi / G.THREAD_PITCH)) < 3e-4
    d.xfrc_applied[bid] = 0.0
    rewards = []
    for _ in range(40):  # a clockwise torque (seen from above) screws it home
        d.xfrc_applied[bid, 3:6] = -0.05 * axis
        _, r, term, _, info = env.step(hold)
        rewards.append(r)
        if term:
            break
    d.xfrc_applied[bid] = 0.0
    assert term and info["success"] and rewards[-1] == 1.0 and sum(rewards) == 1.0
    assert info["phase"] == 0  # earlier phases were skipped: phases count only in order
    assert sc.thread_depth > G.THREAD_TRAVEL - 0.005
    rel_pos, rel_R = G.leg_in_tabletop(*e.part_pose_world(0), *e.part_pose_world(G.LEG_INDEX))
    assert G.is_assembled(rel_pos, rel_R)


def test_assembled_check_and_phase_order():
    home = G.LEG4_ASSEMBLED_POS
    turn = Rotation.from_euler("y", 90, degrees=True).as_matrix()
    assert G.is_assembled(home, np.eye(3)) and G.is_assembled(home + np.array([0.009, -0.004, 0.009]), turn)
    assert not G.is_assembled(home + np.array([0.0, 0.006, 0.0]), np.eye(3))  # 5 mm along the leg's axis
    assert not G.is_assembled(home, Rotation.from_euler("y", 45, degrees=True).as_matrix())
    assert not G.is_assembled(home, Rotation.from_euler("x", 25, degrees=True).as_matrix())
    assert P.advance(0, [True, True, False, True, True]) == 2
    assert P.advance(2, [False, False, True, True, False]) == 4
    assert P.advance(0, [False, True, True, True, True]) == 0


def test_pixel_observations():
    cfg = default_task_config("one_leg", cameras=["wrist", "front"], image_size=32, max_episode_steps=2)
    env = make_env(cfg, seed=0)
    try:
        obs, _ = env.reset(seed=0)
        assert set(obs) == {"state", "image_wrist", "image_front"} and obs["state"].shape == (16,)
        for k in ("image_wrist", "image_front"):
            assert obs[k].shape == (3, 32, 32) and obs[k].dtype == np.uint8 and obs[k].std() > 0
        obs, *_ = env.step(_hold(env))
        assert obs["image_front"].shape == (3, 32, 32)
        frame = env.unwrapped.render()
        assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8 and frame.std() > 0
    finally:
        env.close()


def test_observation_noise():
    clean = make_env(default_task_config("one_leg"), seed=0)
    noisy = make_env(default_task_config("one_leg", obs_noise_std=0.01), seed=0)
    try:
        a, _ = clean.reset(seed=4)
        b, _ = noisy.reset(seed=4)
        assert 0 < np.abs(a - b).max() < 0.1
    finally:
        clean.close()
        noisy.close()

"""Lean env step for robosuite's OSC_POSE Panda tasks: robosuite's own `step()` arithmetic, minus overhead.

robosuite 1.5.1 `env.step(action)` (lite_physics=False) does, per env step, 25 substeps of:
    sim.forward(); robot.control(action, policy_step=first substep); sim.step(); _update_observables()
where control is: composite update_state (controller origin = robot base site), on the first
substep set_goal (OSC_POSE delta goal, gripper format_action + goal), then OSC torques from the
current state (controller update() calls sim.forward() again), gripper command, clip to
ctrlrange, write ctrl. Observables are refreshed every substep but sampled once per env step
(their sampling rate is control_freq).

`FastOSCStepper.step` does the same physics with less around it:
- mj_step1 / ctrl / mj_step2 per substep: mj_step1 computes the position and velocity stages
  (kinematics, mass matrix, bias forces) that robosuite's two mj_forward calls recompute with
  identical inputs, mj_step2 the rest of mj_step (Euler integrator, as these models use). Same
  ctrl, same state, same results (MuJoCo's forward pass does not modify the integration state).
- set_goal runs robosuite's own controller code once per env step (goal semantics unchanged);
- the per-substep OSC torque (robosuite's OperationalSpaceController.run_controller for the
  fixed-impedance, uncoupled, no-interpolator, base-frame configuration of the tasks) is one
  compiled function over MuJoCo's own jacobian / dense mass matrix, calling robosuite's jitted
  opspace_matrices and orientation_error; the robot base is welded to the world, so the
  controller origin and its (zero) velocity are read once per env step, not per substep;
- the gripper command is constant within an env step (robosuite's joint-velocity gripper
  controller output depends on its goal only), so it is computed once;
- only the observables a caller asks for are sampled, once per env step, through robosuite's own
  sensors and observation cache (so values, including their quirks, are the stock ones).
Not done per step (they feed nothing the tasks read): the robot's recent_* history buffers.

Shape legend: nv = model dofs, n = arm joints (7), 3x3 rotation matrices stored row-major.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np
from numba import njit
from robosuite.utils.control_utils import opspace_matrices, orientation_error

NULLSPACE_KP = 10.0  # robosuite control_utils.nullspace_torques default joint_kp


@njit(cache=True)
def osc_core(
    M: np.ndarray,  # [n, n] arm block of the mass matrix
    Jp: np.ndarray,  # [3, n] site position jacobian, arm columns
    Jr: np.ndarray,  # [3, n] site rotation jacobian, arm columns
    vp: np.ndarray,  # [3] site linear velocity
    vr: np.ndarray,  # [3] site angular velocity
    q: np.ndarray,  # [n] arm joint positions
    dq: np.ndarray,  # [n] arm joint velocities
    bias: np.ndarray,  # [n] qfrc_bias of the arm dofs (gravity / Coriolis compensation)
    site_pos: np.ndarray,  # [3] controlled site position
    R: np.ndarray,  # [3, 3] controlled site orientation
    goal_pos: np.ndarray,  # [3] desired site position, world frame
    goal_ori: np.ndarray,  # [3, 3] desired site orientation, world frame
    kp: np.ndarray,  # [6]
    kd: np.ndarray,  # [6]
    initial_joint: np.ndarray,  # [n] nullspace posture target
    ctrl_low: np.ndarray,  # [n]
    ctrl_high: np.ndarray,  # [n]
    out: np.ndarray,  # [n] clipped torques (written)
) -> None:
    """robosuite OSC_POSE run_controller + nullspace_torques + ctrlrange clip, same arithmetic order."""
    n = M.shape[0]
    J = np.empty((6, n))
    J[:3] = Jp
    J[3:] = Jr
    ori_error = orientation_error(goal_ori, R)
    force = np.empty(3)
    torque = np.empty(3)
    for r in range(3):
        # the base's velocity is exactly zero (welded base): vel error = -(v - 0) = -v
        force[r] = (goal_pos[r] - site_pos[r]) * kp[r] + (-vp[r]) * kd[r]
        torque[r] = ori_error[r] * kp[3 + r] + (-vr[r]) * kd[3 + r]
    _, lambda_pos, lambda_ori, nullspace = opspace_matrices(M, J, Jp, Jr)
    wrench = np.empty(6)
    wrench[:3] = np.dot(lambda_pos, force)
    wrench[3:] = np.dot(lambda_ori, torque)
    tau = np.dot(J.T.copy(), wrench) + bias
    kv = np.sqrt(NULLSPACE_KP) * 2.0
    pose_torques = np.dot(M, NULLSPACE_KP * (initial_joint - q) - kv * dq)
    tau += np.dot(nullspace.T.copy(), pose_torques)
    for i in range(n):
        out[i] = min(max(tau[i], ctrl_low[i]), ctrl_high[i])


@njit(cache=True)
def osc_torques(
    mass_full: np.ndarray,  # [nv, nv] mj_fullM
    jacp: np.ndarray,  # [3, nv] site position jacobian
    jacr: np.ndarray,  # [3, nv] site rotation jacobian
    qpos: np.ndarray,  # [nq]
    qvel: np.ndarray,  # [nv]
    qfrc_bias: np.ndarray,  # [nv]
    qpos_idx: np.ndarray,  # [n] arm qpos indices
    qvel_idx: np.ndarray,  # [n] arm dof indices
    site_pos: np.ndarray,  # [3]
    site_mat: np.ndarray,  # [9] row-major
    goal_pos: np.ndarray,
    goal_ori: np.ndarray,
    kp: np.ndarray,
    kd: np.ndarray,
    initial_joint: np.ndarray,
    ctrl_low: np.ndarray,
    ctrl_high: np.ndarray,
    out: np.ndarray,
) -> None:
    """osc_core from MuJoCo's full-size arrays: gathers the arm block as robosuite's update() does."""
    n = qvel_idx.shape[0]
    M = np.empty((n, n))
    Jp = np.empty((3, n))
    Jr = np.empty((3, n))
    q = np.empty(n)
    dq = np.empty(n)
    bias = np.empty(n)
    for i in range(n):
        for j in range(n):
            M[i, j] = mass_full[qvel_idx[i], qvel_idx[j]]
        for r in range(3):
            Jp[r, i] = jacp[r, qvel_idx[i]]
            Jr[r, i] = jacr[r, qvel_idx[i]]
        q[i] = qpos[qpos_idx[i]]
        dq[i] = qvel[qvel_idx[i]]
        bias[i] = qfrc_bias[qvel_idx[i]]
    # site velocities as robosuite's get_site_xvelp / get_site_xvelr: full jacobian times full qvel
    vp = np.dot(jacp, qvel)
    vr = np.dot(jacr, qvel)
    R = site_mat.reshape((3, 3)).copy()
    osc_core(
        M, Jp, Jr, vp, vr, q, dq, bias, site_pos, R, goal_pos, goal_ori, kp, kd, initial_joint, ctrl_low, ctrl_high, out
    )


def _check_supported(controller: Any) -> None:
    from robosuite.controllers.parts.arm.osc import OperationalSpaceController

    ok = (
        type(controller) is OperationalSpaceController
        and controller.impedance_mode == "fixed"
        and controller.input_type == "delta"
        and controller.input_ref_frame == "base"
        and controller.use_ori
        and controller.uncoupling
        and controller.interpolator_pos is None
        and controller.interpolator_ori is None
        and controller.num_ref_sites == 1
    )
    if not ok:
        raise ValueError(
            "fast step supports robosuite's fixed-impedance OSC_POSE delta controller in the base frame without "
            f"interpolators only, got {type(controller).__name__}"
        )


class FastOSCStepper:
    """Steps a single-Panda robosuite env as `env.step` does, with the overhead removed (module docstring)."""

    def __init__(self, rs_env: Any, obs_keys: list[str]) -> None:
        if len(rs_env.robots) != 1:
            raise ValueError(f"fast step supports one robot, got {len(rs_env.robots)}")
        self.rs = rs_env
        sim = rs_env.sim
        self.m: mujoco.MjModel = sim.model._model
        self.d: mujoco.MjData = sim.data._data
        if self.m.opt.integrator != mujoco.mjtIntegrator.mjINT_EULER:
            raise ValueError("fast step needs the Euler integrator (mj_step1/mj_step2 split)")
        robot = rs_env.robots[0]
        self.robot = robot
        (self.arm_name,) = robot.arms
        self.grip_name = robot.get_gripper_name(self.arm_name)
        self.substeps = round(rs_env.control_timestep / rs_env.model_timestep)
        m = self.m
        arm = robot.part_controllers[self.arm_name]
        self.site_id = m.site(arm.ref_name).id
        base_site = f"{arm.naming_prefix}{arm.part_name}_center"
        self.base_site_id = m.site(base_site).id
        if m.body_weldid[m.site_bodyid[self.base_site_id]] != 0:
            raise ValueError(f"fast step needs a robot base welded to the world ({base_site} moves)")
        self.qpos_idx = np.asarray(arm.qpos_index, np.int64)
        self.qvel_idx = np.asarray(arm.qvel_index, np.int64)
        act = robot._ref_actuators_indexes_dict
        self.arm_act = np.asarray(act[self.arm_name], np.int64)
        self.grip_act = np.asarray(act[self.grip_name], np.int64)
        a0, n = int(self.arm_act[0]), len(self.arm_act)
        self.arm_slice = slice(a0, a0 + n) if np.array_equal(self.arm_act, np.arange(a0, a0 + n)) else None
        self.arm_low = m.actuator_ctrlrange[self.arm_act, 0].copy()
        self.arm_high = m.actuator_ctrlrange[self.arm_act, 1].copy()
        self.grip_low = m.actuator_ctrlrange[self.grip_act, 0].copy()
        self.grip_high = m.actuator_ctrlrange[self.grip_act, 1].copy()
        self.mass = np.zeros((m.nv, m.nv))
        self.jacp = np.zeros((3, m.nv))
        self.jacr = np.zeros((3, m.nv))
        self.tau = np.zeros(len(self.arm_act))
        self.obs_keys = set(obs_keys)
        missing = self.obs_keys - set(rs_env._observables)
        if missing:
            raise KeyError(f"no robosuite observable(s) {sorted(missing)}")
        self.bind()

    def bind(self) -> None:
        """Pick up the controllers and observables robosuite (re)creates on every reset; call after env.reset()."""
        robot = self.robot
        self.composite = robot.composite_controller
        self.arm = robot.part_controllers[self.arm_name]
        _check_supported(self.arm)
        self.gripper = robot.part_controllers[self.grip_name]
        # mj_step1 has forwarded the sim; the controllers' update() would run mj_forward again on the
        # same state (lite_physics=False) and read the same values, so skip that call.
        self.arm.lite_physics = True
        self.gripper.lite_physics = True
        # sampled observables in robosuite's order (sensors read each other's values from the cache)
        obs = self.rs._observables
        deps = {k for k in obs if k.startswith("world_pose_in_")}  # the relative-pose sensors read it
        self.observables = [(k, o) for k, o in obs.items() if k in self.obs_keys or k in deps]

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        """One env step (robosuite's `step` minus reward/done); returns the sampled observables."""
        m, d, rs = self.m, self.d, self.rs
        rs.timestep += 1
        mujoco.mj_step1(m, d)
        # set_goal with robosuite's own code (update_state: controller origin = robot base site)
        self.composite.update_state()
        self.composite.set_goal(action)
        arm = self.arm
        origin_pos, origin_ori = arm.origin_pos, arm.origin_ori
        goal_pos = origin_pos + np.dot(origin_ori, arm.goal_pos)
        goal_ori = np.ascontiguousarray(np.dot(origin_ori, arm.goal_ori))
        ctrl = d.ctrl
        # the gripper command is constant over the substeps (MuJoCo does not write ctrl)
        ctrl[self.grip_act] = np.clip(self.gripper.run_controller(), self.grip_low, self.grip_high)
        contiguous = self.arm_slice is not None
        out = ctrl[self.arm_slice] if contiguous else self.tau  # torques written into ctrl in place
        gains = (
            goal_pos,
            goal_ori,
            np.asarray(arm.kp, np.float64),
            np.asarray(arm.kd, np.float64),
            np.asarray(arm.initial_joint, np.float64),
            self.arm_low,
            self.arm_high,
            out,
        )
        # first substep: the state set_goal's update() read into the controller, as robosuite's
        # run_controller uses it (right after a reset that is the reset-time state, read before the
        # fingers were placed; later it equals what osc_torques gathers from the data)
        osc_core(
            np.ascontiguousarray(arm.mass_matrix),  # robosuite's is Fortran-ordered: one compiled variant only
            arm.J_pos,
            arm.J_ori,
            arm.ref_pos_vel,
            arm.ref_ori_vel,
            arm.joint_pos,
            arm.joint_vel,
            d.qfrc_bias[self.qvel_idx],
            arm.ref_pos,
            arm.ref_ori_mat,
            *gains,
        )
        args = (
            d.qpos,
            d.qvel,
            d.qfrc_bias,
            self.qpos_idx,
            self.qvel_idx,
            d.site_xpos[self.site_id],
            d.site_xmat[self.site_id],
            *gains,
        )
        arm_act, site = self.arm_act, self.site_id
        mass, jacp, jacr = self.mass, self.jacp, self.jacr
        for i in range(self.substeps):
            if i:
                mujoco.mj_step1(m, d)
                mujoco.mj_fullM(m, mass, d.qM)
                mujoco.mj_jacSite(m, d, jacp, jacr, site)
                osc_torques(mass, jacp, jacr, *args)
            if not contiguous:
                ctrl[arm_act] = out
            mujoco.mj_step2(m, d)
        arm.new_update = True  # as robosuite's run_controller leaves it: next set_goal re-reads the state
        rs.cur_time += rs.control_timestep
        cache = rs._obs_cache
        for _, o in self.observables:
            o.update(timestep=0.0, obs_cache=cache, force=True)
        return {k: o.obs for k, o in self.observables}

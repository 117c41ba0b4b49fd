"""The 10-D absolute end-effector action of DPPO's furniture tasks, tracked by MuJoCo's own actuators.

Action (env units): ee position target (3, m, base frame), ee orientation target as a 6D
rotation (6, base frame), gripper (1: -1 open, +1 close) — FurnitureSim's act_rot_repr="rot_6d"
with absolute targets, at 10 Hz.

6D rotation convention (pytorch3d, used by the reference): the first two ROWS of the rotation
matrix, [R00 R01 R02 R10 R11 R12]; decoding is Gram-Schmidt on those rows.

End-effector frame: FurnitureBench's Franka hand frame (k_ee_link): z = approach, y = the
fingers' closing axis. robosuite's Panda grip site has z = approach and x = closing axis, so
R_ee = R_site @ SITE_TO_EE. Position = robosuite's grip site (between the finger pads).

Tracking (replaces robosuite's OSC_POSE computed in Python at every 2 ms physics step): once
per control step, a differential-IK joint target that MuJoCo's own actuators track:

1. the target is clipped to FurnitureBench's ee position limits;
2. inverse kinematics (IK_ITERS damped least-squares Gauss-Newton steps on mj_jacSite of the
   grip site, damping IK_DAMPING, from the measured joints, with a null-space pull of gain
   IK_NULL_GAIN towards the episode's start joints, as robosuite's OSC had) gives a 7-joint
   target clipped to IK_LIMIT_MARGIN inside the joint limits (a joint at its limit is clipped,
   not re-solved without: the other joints make up for it only partly, much as under
   robosuite's OSC, instead of contorting the arm; re-solving without it was tried and drove
   the arm into odd postures at the far hole), moved from the measured joints by at most the Franka's joint
   speed limits over a control step (IK_MAX_STEP, direction kept);
3. MuJoCo's joint impedance actuators (scene.py) track it over the 50 physics steps in C:
   torque = ARM_KP (q_target - q) - ARM_KV qdot (+ MuJoCo's gravity compensation), clipped to
   the Panda's torque limits.

ARM_KP / ARM_KV: natural frequency ARM_OMEGA with critical damping on the diagonal of the joint
space inertia at FurnitureBench's reset joints (robosuite's Panda with its armature; a test checks
ARM_INERTIA against the model): each joint's closed loop settles (5 %) in about 0.25 s, against
~0.4 s for robosuite's OSC at kp 150.

Gripper: robosuite's PandaGripper semantics, once per control step: a state s in [-1, 1] moves by
GRIPPER_RATE * sign(gripper) (full travel in 1 s), the fingers' position actuators aim at
s = -1 open (4 cm each), +1 closed. s restarts at 0 (half open) every episode (robosuite kept it
across resets).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dppo_robot.envs.one_leg.geometry import EE_POS_LIMITS

# Columns: the FurnitureBench ee axes expressed in the robosuite grip-site frame.
SITE_TO_EE = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])

ARM_OMEGA = 20.0  # rad/s
# diag(M) (kg m^2, armature included) of the arm at geometry.RESET_JOINTS (mj_fullM of the model)
ARM_INERTIA = (7.92, 5.44, 3.73, 2.86, 1.51, 1.20, 0.91)
ARM_KP = tuple(round(i * ARM_OMEGA**2) for i in ARM_INERTIA)  # N m / rad
ARM_KV = tuple(round(2.0 * i * ARM_OMEGA, 1) for i in ARM_INERTIA)  # N m s / rad
IK_ITERS = 3
IK_DAMPING = 0.02  # DLS damping (m, rad)
IK_NULL_GAIN = 0.1  # fraction of the start-joint error pulled back per control step in the null space
IK_LIMIT_MARGIN = 0.02  # rad: joint targets stay this far inside the joint limits
# Franka joint velocity limits (rad/s) x one control step (0.1 s): the largest joint target step
IK_MAX_STEP = np.array([2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61]) * 0.1
GRIPPER_RATE = 0.2  # robosuite PandaGripper.speed: gripper state change per control step


def matrix_to_rot6d(R: np.ndarray) -> np.ndarray:
    """[..., 3, 3] -> [..., 6]: the first two rows (pytorch3d matrix_to_rotation_6d)."""
    R = np.asarray(R)
    return R[..., :2, :].reshape(*R.shape[:-2], 6)


def rot6d_to_matrix(d6: np.ndarray) -> np.ndarray:
    """[..., 6] -> [..., 3, 3] by Gram-Schmidt on the two rows (pytorch3d rotation_6d_to_matrix)."""
    d6 = np.asarray(d6, np.float64)
    a1, a2 = d6[..., :3], d6[..., 3:6]
    b1 = a1 / np.maximum(np.linalg.norm(a1, axis=-1, keepdims=True), 1e-9)
    b2 = a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1
    b2 = b2 / np.maximum(np.linalg.norm(b2, axis=-1, keepdims=True), 1e-9)
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-2)


def site_to_ee(R_site: np.ndarray) -> np.ndarray:
    return np.asarray(R_site) @ SITE_TO_EE


def ee_to_site(R_ee: np.ndarray) -> np.ndarray:
    return np.asarray(R_ee) @ SITE_TO_EE.T


def parse_action(action: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """10-D env action -> (grip-site position target in the base frame, clipped to the limits;
    grip-site rotation target, base axes; gripper command in [-1, 1]).

    Scalar arithmetic: the same maths as rot6d_to_matrix and ee_to_site, ~10x faster for one action.
    """
    a = np.asarray(action, np.float64).reshape(-1)
    if a.shape != (10,):
        raise ValueError(f"one_leg: action must have 10 values (pos 3, rot6d 6, gripper 1), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"one_leg: action has non-finite values: {a}")
    v = a.tolist()
    pos = np.minimum(np.maximum(a[:3], EE_POS_LIMITS[:, 0]), EE_POS_LIMITS[:, 1])
    x0, x1, x2, y0, y1, y2 = v[3:9]
    n = max(math.sqrt(x0 * x0 + x1 * x1 + x2 * x2), 1e-9)
    x0, x1, x2 = x0 / n, x1 / n, x2 / n
    dot = x0 * y0 + x1 * y1 + x2 * y2
    y0, y1, y2 = y0 - dot * x0, y1 - dot * x1, y2 - dot * x2
    n = max(math.sqrt(y0 * y0 + y1 * y1 + y2 * y2), 1e-9)
    y0, y1, y2 = y0 / n, y1 / n, y2 / n
    z0, z1, z2 = x1 * y2 - x2 * y1, x2 * y0 - x0 * y2, x0 * y1 - x1 * y0
    # rows of R_ee are (x, y, z); R_site = R_ee @ SITE_TO_EE.T: columns (R_ee[:, 1], -R_ee[:, 0], R_ee[:, 2])
    R_site = np.array([[x1, -x0, x2], [y1, -y0, y2], [z1, -z0, z2]])
    return pos, R_site, min(max(v[9], -1.0), 1.0)


class JointTargetIK:
    """Damped least-squares IK of the grip site on a scratch MjData (see the module docstring)."""

    def __init__(self, model: Any, site_id: int, qpos_adr: np.ndarray, dof_adr: np.ndarray,
                 joint_range: np.ndarray) -> None:  # fmt: skip
        import mujoco  # loaded with the env, not when the task registers

        self.mj = mujoco
        self.m = model
        self.d = mujoco.MjData(model)
        self.site = site_id
        self.qadr = qpos_adr
        # the arm's dofs as a slice when contiguous (cheaper than fancy indexing every iteration)
        contiguous = np.array_equal(dof_adr, np.arange(dof_adr[0], dof_adr[0] + len(dof_adr)))
        self.dadr = slice(int(dof_adr[0]), int(dof_adr[0]) + len(dof_adr)) if contiguous else dof_adr
        self.lo, self.hi = joint_range[:, 0] + IK_LIMIT_MARGIN, joint_range[:, 1] - IK_LIMIT_MARGIN
        self.jacp = np.zeros((3, model.nv))
        self.jacr = np.zeros((3, model.nv))
        self.q_rest = np.zeros(len(qpos_adr))
        self._quat = np.zeros(4)
        self._qgoal = np.zeros(4)
        self._err_r = np.zeros(3)
        self._J = np.zeros((6, len(qpos_adr)))
        self._A = np.zeros((6, 6))
        self._lam = IK_DAMPING**2 * np.eye(6)
        self._err = np.zeros(6)
        self._y = np.zeros(6)

    def solve(self, qpos: np.ndarray, pos_world: np.ndarray, R_site: np.ndarray) -> np.ndarray:
        """Arm joint target whose grip site is at (pos_world, R_site), starting from the joints in qpos."""
        m, d, mujoco = self.m, self.d, self.mj
        d.qpos[:] = qpos
        q0 = qpos[self.qadr].copy()
        q = q0.copy()
        mujoco.mju_mat2Quat(self._qgoal, np.ascontiguousarray(R_site).reshape(9))
        J, A = self._J, self._A
        err, y = self._err, self._y
        for it in range(IK_ITERS):
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            mujoco.mj_jacSite(m, d, self.jacp, self.jacr, self.site)
            J[:3], J[3:] = self.jacp[:, self.dadr], self.jacr[:, self.dadr]
            R = d.site_xmat[self.site]
            mujoco.mju_mat2Quat(self._quat, R)
            mujoco.mju_subQuat(self._err_r, self._qgoal, self._quat)  # in the site frame
            err[:3] = pos_world - d.site_xpos[self.site]
            mujoco.mju_mulMatVec3(err[3:], R, self._err_r)
            # dq = J^T (J J^T + damping^2 I)^-1 err, by MuJoCo's Cholesky (numpy's solve costs 20x more here)
            np.matmul(J, J.T, out=A)
            A += self._lam
            mujoco.mju_cholFactor(A, 0.0)
            mujoco.mju_cholSolve(y, A, err)
            dq = J.T @ y
            if it == 0:  # null-space pull towards the start joints (does not move the site to first order)
                z = IK_NULL_GAIN * (self.q_rest - q)
                mujoco.mju_cholSolve(y, A, J @ z)
                dq += z - J.T @ y
            q = np.minimum(np.maximum(q + dq, self.lo), self.hi)
            d.qpos[self.qadr] = q
        # at most the Franka's joint speed limits over one control step, the step's direction kept
        step = q - q0
        scale = float(np.max(np.abs(step) / IK_MAX_STEP))
        return q0 + step / scale if scale > 1.0 else q

"""Inverse kinematics for the joint-space output: Cartesian targets -> 7 Panda joint positions.

The model is MuJoCo's Panda as robosuite builds it (robosuite.models.robots.Panda with its
PandaGripper), the same kinematics the simulated tasks use; the solver is mink (differential IK
as a QP, joint limits enforced), iterated from a seed (the measured joints) until the error is
below tolerance. The end-effector frame is the one the Cartesian path and the policies use:
the position of robosuite's grip site (`gripper0_right_grip_site`) with the orientation of the
hand body (`robot0_right_hand`), i.e. robot0_eef_pos / robot0_eef_quat of the tasks. On the
real robot the pose the bridge anchors on (franka_ros2's end-effector pose) must be that frame.

Targets come in the bridge's frame; `base_pos_m` / `base_quat_xyzw` place the robot base in it
(identity on the robot, where targets are in the base frame; robosuite's world offset in sim).

Shapes: q [7] rad; position [3] m; quat [4] xyzw.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from dppo_robot.deploy.pose_math import normalize_quat

EE_SITE = "dppo_ee"  # added to the hand body at the grip site's position


@dataclass
class IKResult:
    q: np.ndarray  # [7]
    position_error_m: float
    rotation_error_rad: float
    iterations: int
    converged: bool


def _quat_mul_xyzw(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ]
    )


def _rotate(q_xyzw: np.ndarray, v: np.ndarray) -> np.ndarray:
    p = np.array([v[0], v[1], v[2], 0.0])
    conj = q_xyzw * np.array([-1, -1, -1, 1.0])
    return _quat_mul_xyzw(_quat_mul_xyzw(q_xyzw, p), conj)[:3]


@cache
def panda_model_xml() -> str:
    """robosuite's Panda + PandaGripper MJCF (robot at the origin) with the EE_SITE added."""
    import mujoco
    from robosuite.models.grippers import gripper_factory
    from robosuite.models.robots import Panda

    robot = Panda()
    arm = robot.eef_name["right"] if isinstance(robot.eef_name, dict) else robot.eef_name
    robot.add_gripper(gripper_factory("PandaGripper", idn="0_right"), arm)
    spec = mujoco.MjSpec.from_string(robot.get_xml())
    model = spec.compile()
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    hand = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "robot0_right_hand")
    grip = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "gripper0_right_grip_site")
    rel = data.xmat[hand].reshape(3, 3).T @ (data.site_xpos[grip] - data.xpos[hand])  # grip site in the hand frame
    spec.body("robot0_right_hand").add_site(name=EE_SITE, pos=rel.tolist())
    return spec.to_xml()


class PandaIK:
    """mink IK on the Panda model; solve(target, seed) -> IKResult."""

    ARM_JOINTS = tuple(f"robot0_joint{i}" for i in range(1, 8))

    def __init__(
        self,
        base_pos_m: list[float] | None = None,
        base_quat_xyzw: list[float] | None = None,
        max_iters: int = 50,
        tol_m: float = 1e-5,
        tol_rad: float = 1e-4,
        posture_cost: float = 0.0,
        damping: float = 1e-3,
        step_s: float = 0.05,
    ) -> None:
        import mink
        import mujoco

        self.mink = mink
        self.model = mujoco.MjModel.from_xml_string(panda_model_xml())
        self.base_pos = np.asarray(base_pos_m if base_pos_m is not None else [0.0, 0.0, 0.0], np.float64)
        self.base_quat = normalize_quat(np.asarray(base_quat_xyzw if base_quat_xyzw is not None else [0, 0, 0, 1.0]))
        self.max_iters, self.tol_m, self.tol_rad, self.step_s = max_iters, tol_m, tol_rad, step_s
        self.qadr = np.array(
            [
                self.model.jnt_qposadr[mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, n)]
                for n in self.ARM_JOINTS
            ]
        )
        self.config = mink.Configuration(self.model)
        self.frame = mink.FrameTask(EE_SITE, "site", position_cost=1.0, orientation_cost=1.0, lm_damping=1e-6)
        self.posture = mink.PostureTask(self.model, cost=posture_cost)
        self.tasks = [self.frame, self.posture] if posture_cost > 0 else [self.frame]
        self.damping = damping
        self.limits = [mink.ConfigurationLimit(self.model)]

    def to_base(self, position: np.ndarray, quat_xyzw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A pose in the bridge's frame -> the robot base frame."""
        inv = self.base_quat * np.array([-1, -1, -1, 1.0])
        return _rotate(inv, np.asarray(position, np.float64) - self.base_pos), _quat_mul_xyzw(inv, quat_xyzw)

    def fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """End-effector pose (bridge frame) at joint positions q [7]."""
        full = self.model.qpos0.copy()
        full[self.qadr] = q
        self.config.update(full)
        T = self.config.get_transform_frame_to_world(EE_SITE, "site")
        w, x, y, z = T.rotation().wxyz
        pos_b, quat_b = T.translation(), np.array([x, y, z, w])
        return self.base_pos + _rotate(self.base_quat, pos_b), normalize_quat(_quat_mul_xyzw(self.base_quat, quat_b))

    def solve(self, position: np.ndarray, quat_xyzw: np.ndarray, seed_q: np.ndarray) -> IKResult:
        """Joint positions reaching the target pose, starting from (and staying near) seed_q."""
        mink = self.mink
        p, q = self.to_base(position, normalize_quat(quat_xyzw))
        full = self.model.qpos0.copy()
        full[self.qadr] = seed_q
        self.config.update(full)
        self.posture.set_target(full)
        x, y, z, w = q
        self.frame.set_target(mink.SE3.from_rotation_and_translation(mink.SO3(np.array([w, x, y, z])), p))
        err = self.frame.compute_error(self.config)
        it = 0
        while it < self.max_iters and not (
            np.linalg.norm(err[:3]) < self.tol_m and np.linalg.norm(err[3:]) < self.tol_rad
        ):
            vel = mink.solve_ik(self.config, self.tasks, self.step_s, "daqp", damping=self.damping, limits=self.limits)
            self.config.integrate_inplace(vel, self.step_s)
            err = self.frame.compute_error(self.config)
            it += 1
        pe, re = float(np.linalg.norm(err[:3])), float(np.linalg.norm(err[3:]))
        return IKResult(self.config.q[self.qadr].copy(), pe, re, it, pe < self.tol_m and re < self.tol_rad)

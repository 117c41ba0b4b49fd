"""The one_leg gym env: DPPO's furniture state/action layout over the MuJoCo scene (scene.py).

Observation (state variant), float32 [58], in order (names as import_dppo.furniture_spec):
    ee_pos 3 (m, base), ee_rot_6d 6 (base), ee_lin_vel 3 (m/s, base axes), ee_ang_vel 3
    (rad/s, base axes), gripper_width 1 (m), then for square_table_top, square_table_leg1..4 and
    obstacle_front: <part>_pos 3 (m, base_tag) and <part>_quat 4 (xyzw, w >= 0, base_tag).
Pixel variant (cfg.cameras, e.g. ["wrist", "front"]): {"state": the 16 proprio values,
"image_<cam>": uint8 [3, S, S]} ("wrist" = robosuite's robot0_eye_in_hand; any MuJoCo camera
name of the scene also works; offscreen rendering, MUJOCO_GL=egl unless set).
Action float32 [10]: absolute ee position (base), 6D rotation, gripper (see controller.py), 10 Hz.

A step: IK once (controller.py), then MuJoCo runs the 50 physics steps with its own actuators
(scene.OneLegScene.step), then the observation, phases and reward are computed once.

Episode: info["success"] = leg4 assembled (FurnitureBench's check), info["phase"] / ["phase_name"]
= highest phase reached in order (phases.py). Sparse reward: 1.0 on the step the leg becomes
assembled (FurnitureBench rewards newly assembled pairs), else 0; "dense" adds 0.2 for every
new phase reached before that (FurnitureSim's phase_reward idea), so an episode sums to at most
1.8. The episode terminates on success by default (FurnitureBench's done = all assembled;
TaskConfig.terminate_on_success, default True for one_leg).

Start states: cfg.randomness "low" or "med" (geometry.RANDOMNESS); each reset draws from the
env's own generator (reset(seed=...) reseeds it), so the same seed gives the same episode.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from dppo_robot.envs.one_leg import geometry as G
from dppo_robot.envs.one_leg import phases as P
from dppo_robot.envs.one_leg.controller import GRIPPER_RATE, JointTargetIK, parse_action, site_to_ee
from dppo_robot.envs.task_config import TaskConfig
from dppo_robot.io_spec import CameraSpec, IOSpec, Slice

CAMERA_ALIASES = {"wrist": "robot0_eye_in_hand"}
PROPRIO_DIM = 16
OBS_DIM = PROPRIO_DIM + 7 * (len(G.PART_NAMES) + 1)
ACTION_DIM = 10
DENSE_PHASE_REWARD = 0.2
_SQRT_HALF = float(np.sqrt(0.5))
_ROT6D_FROM_SITE = np.array([1, 0, 2, 4, 3, 5])  # indices into the grip site's row-major xmat
_ROT6D_SIGN = np.array([-1.0, 1.0, 1.0, -1.0, 1.0, 1.0])

PROPRIO = (
    Slice("ee_pos", 3, "m", "base", "end-effector position"),
    Slice("ee_rot_6d", 6, "6d", "base", "end-effector orientation, 6D rotation"),
    Slice("ee_lin_vel", 3, "m/s", "base", "end-effector linear velocity"),
    Slice("ee_ang_vel", 3, "rad/s", "base", "end-effector angular velocity"),
    Slice("gripper_width", 1, "m", "", "gripper opening"),
)
ACTION = (
    Slice("ee_pos", 3, "m", "base", "absolute end-effector position target"),
    Slice("ee_rot_6d", 6, "6d", "base", "absolute end-effector orientation target, 6D rotation"),
    Slice("gripper", 1, "normalized", "", "gripper command: -1 open, +1 close"),
)


def part_slices() -> list[Slice]:
    out = []
    for part in (*G.PART_NAMES, G.OBSTACLE_NAME):
        out.append(Slice(f"{part}_pos", 3, "m", "base_tag", f"{part} position"))
        out.append(Slice(f"{part}_quat", 4, "quat_xyzw", "base_tag", f"{part} orientation"))
    return out


def one_leg_io_spec(cfg: TaskConfig) -> IOSpec:
    obs = list(PROPRIO) if cfg.cameras else [*PROPRIO, *part_slices()]
    cams = [CameraSpec(c, cfg.image_size, cfg.image_size) for c in cfg.cameras]
    return IOSpec(obs, list(ACTION), float(cfg.control_hz), cams)


def _ensure_gl_backend() -> None:
    # Headless offscreen rendering: EGL unless the user chose a backend (osmesa works too).
    os.environ.setdefault("MUJOCO_GL", "egl")


class OneLegEnv(gym.Env):
    """FurnitureBench one_leg twin (see the module docstring)."""

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"]}

    def __init__(self, cfg: TaskConfig, seed: int | None = None) -> None:
        if cfg.randomness not in G.RANDOMNESS:
            raise ValueError(f"one_leg: randomness must be one of {sorted(G.RANDOMNESS)}, got {cfg.randomness!r}")
        if abs(cfg.control_hz - G.CONTROL_HZ) > 1e-9:
            raise ValueError(f"one_leg runs at {G.CONTROL_HZ:g} Hz (FurnitureBench's rate); got {cfg.control_hz:g}")
        _ensure_gl_backend()  # before MuJoCo loads: render() and the pixel variant draw offscreen
        from dppo_robot.envs.one_leg.scene import TIMESTEP, OneLegScene

        self.cfg = cfg
        self.cameras = list(cfg.cameras)
        self._rng = np.random.default_rng(seed)
        substeps = round(1.0 / (G.CONTROL_HZ * TIMESTEP))
        self.scene = OneLegScene(G.RANDOMNESS[cfg.randomness], substeps, offscreen_size=max(cfg.image_size, 256))
        sc = self.scene
        self.ik = JointTargetIK(sc.model, sc.grip_site_id, sc.arm_qpos_adr, sc.arm_dof_adr, sc.arm_range)
        lo, hi = sc.finger_ctrl_range[:, 0], sc.finger_ctrl_range[:, 1]
        self._finger_mid, self._finger_half = (hi + lo) / 2, (hi - lo) / 2
        self._grip = 0.0
        self._renderers: dict[tuple[int, int], Any] = {}
        self._vel = np.zeros(6)
        self._obs_body_ids = np.array([*sc.part_body_ids, sc.obstacle_body_id])
        self._tag_origin = sc.robot_base + G.TAG_IN_BASE
        state = gym.spaces.Box(-np.inf, np.inf, (PROPRIO_DIM if self.cameras else OBS_DIM,), np.float32)
        if self.cameras:
            s = cfg.image_size
            spaces: dict[str, gym.Space] = {"state": state}
            for cam in self.cameras:
                spaces[f"image_{cam}"] = gym.spaces.Box(0, 255, (3, s, s), np.uint8)
            self.observation_space = gym.spaces.Dict(spaces)
        else:
            self.observation_space = state
        low = np.array([*G.EE_POS_LIMITS[:, 0], *[-1.0] * 7], np.float32)
        high = np.array([*G.EE_POS_LIMITS[:, 1], *[1.0] * 7], np.float32)
        self.action_space = gym.spaces.Box(low, high, (ACTION_DIM,), np.float32)
        self.phase = 0
        self.phase_steps: list[int | None] = [None] * (P.N_PHASES + 1)
        self.t = 0
        self._assembled = False

    # -- state access ------------------------------------------------------------------------
    @property
    def model(self):
        """The MuJoCo MjModel."""
        return self.scene.model

    @property
    def data(self):
        """The MuJoCo MjData."""
        return self.scene.data

    def physics_handles(self) -> tuple[Any, Any, int]:
        """(MjModel, MjData, physics steps per env step): what dppo_robot.bench.step_cost replays."""
        return self.scene.model, self.scene.data, self.scene.substeps

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """End-effector position (base frame) and orientation (FurnitureBench hand frame, base axes)."""
        sid = self.scene.grip_site_id
        d = self.data
        return d.site_xpos[sid] - self.scene.robot_base, site_to_ee(d.site_xmat[sid].reshape(3, 3))

    def gripper_width(self) -> float:
        q = self.data.qpos[self.scene.finger_qpos_adr]
        return float(q[0] - q[1])

    def part_pose_world(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        bid = self.scene.part_body_ids[index]
        d = self.data
        return d.xpos[bid].copy(), d.xmat[bid].reshape(3, 3).copy()

    def obstacle_pose_world(self) -> tuple[np.ndarray, np.ndarray]:
        bid = self.scene.obstacle_body_id
        d = self.data
        return d.xpos[bid].copy(), d.xmat[bid].reshape(3, 3).copy()

    def world_to_tag(self, pos: np.ndarray, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return G.base_to_tag(pos - self.scene.robot_base), G.R_BASE_TAG.T @ R

    def proprio(self) -> np.ndarray:
        """[16]: ee_pos, ee_rot_6d, ee_lin_vel, ee_ang_vel, gripper_width (float64)."""
        import mujoco

        d, sc = self.data, self.scene
        out = np.empty(PROPRIO_DIM)
        sid = sc.grip_site_id
        out[0:3] = d.site_xpos[sid] - sc.robot_base
        # first two rows of R_ee = R_site @ SITE_TO_EE = (-R_site[:, 1], R_site[:, 0], R_site[:, 2])
        out[3:9] = d.site_xmat[sid][_ROT6D_FROM_SITE] * _ROT6D_SIGN
        # velocity of the grip site (world axes): [angular 3, linear 3]
        mujoco.mj_objectVelocity(self.model, d, mujoco.mjtObj.mjOBJ_SITE, sid, self._vel, 0)
        out[9:12] = self._vel[3:]
        out[12:15] = self._vel[:3]
        q = d.qpos[sc.finger_qpos_adr]
        out[15] = q[0] - q[1]
        return out

    def parts_poses(self) -> np.ndarray:
        """[42]: pos (3, base_tag) and quat (4, xyzw, w >= 0, base_tag) of the 5 parts and the fixture."""
        d = self.data
        ids = self._obs_body_ids
        pos = (d.xpos[ids] - self._tag_origin) @ G.R_BASE_TAG  # rows: R_BASE_TAG.T @ p
        b0, b1, b2, b3 = d.xquat[ids].T  # world wxyz
        # q_tag = q(R_BASE_TAG.T) * q_world, q(R_BASE_TAG.T) = (0, s, s, 0): a half turn about (x + y) / sqrt 2
        s = _SQRT_HALF
        q = np.stack([s * (b0 + b3), s * (b0 - b3), s * (b2 - b1), -s * (b1 + b2)], axis=1)  # xyzw
        q *= np.where(q[:, 3:] < 0, -1.0, 1.0)
        return np.concatenate([pos, q], axis=1).reshape(-1)

    def snapshot(self) -> P.Snapshot:
        top_pos, top_R = self.part_pose_world(0)
        leg_pos, leg_R = self.part_pose_world(G.LEG_INDEX)
        top_tag, top_R_tag = self.world_to_tag(top_pos, top_R)
        obst_tag, _ = self.world_to_tag(*self.obstacle_pose_world())
        grasped = self.scene.grasped_parts()
        return P.Snapshot(
            top_pos=top_pos,
            top_rot=top_R,
            leg_pos=leg_pos,
            leg_rot=leg_R,
            leg_start_z=self._leg_start_z,
            stud_tip=self.data.site_xpos[self.scene.stud_tip_site_id].copy(),
            obstacle_tag=obst_tag,
            top_pos_tag=top_tag,
            top_rot_tag=top_R_tag,
            grasp_top=0 in grasped,
            grasp_leg=G.LEG_INDEX in grasped,
            thread_engaged=self.scene.thread_engaged,
        )

    # -- observation ------------------------------------------------------------------------
    def _render(self, camera: str, width: int, height: int) -> np.ndarray:
        """RGB uint8 [H, W, 3] from a scene camera (offscreen, top row first)."""
        import mujoco

        r = self._renderers.get((width, height))
        if r is None:
            r = self._renderers[(width, height)] = mujoco.Renderer(self.model, height, width)
            self._vopt = mujoco.MjvOption()
            self._vopt.geomgroup[0] = 0  # collision geoms hidden (robosuite's visual meshes are group 1)
            self._vopt.sitegroup[:] = 0  # no site markers
        r.update_scene(self.data, camera, scene_option=self._vopt)
        return r.render()

    def _obs(self) -> Any:
        state = self.proprio() if self.cameras else np.concatenate([self.proprio(), self.parts_poses()])
        state = state.astype(np.float32)
        if self.cfg.obs_noise_std > 0:
            state += self._rng.normal(0.0, self.cfg.obs_noise_std, state.shape).astype(np.float32)
        if not self.cameras:
            return state
        out: dict[str, np.ndarray] = {"state": state}
        s = self.cfg.image_size
        for cam in self.cameras:
            img = self._render(CAMERA_ALIASES.get(cam, cam), s, s)
            out[f"image_{cam}"] = np.ascontiguousarray(img.transpose(2, 0, 1))
        return out

    def _info(self, now: list[bool]) -> dict[str, Any]:
        return {
            "success": bool(now[-1]),
            "phase": self.phase,
            "phase_name": P.PHASE_NAMES[self.phase],
            "predicates": now,
        }

    def _set_gripper(self) -> None:
        s = self._grip
        self.data.ctrl[self.scene.finger_act] = self._finger_mid + self._finger_half * np.array([-s, s])

    # -- gym API ----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.scene.start_rng = np.random.default_rng(int(self._rng.integers(2**63 - 1)))
        self.scene.reset()
        self.scene.check_robot_base()
        self.ik.q_rest = np.array(self.scene.start.joints)
        self._grip = 0.0
        self._set_gripper()
        self._leg_start_z = float(self.part_pose_world(G.LEG_INDEX)[0][2])
        self.phase = 0
        self.phase_steps = [0] + [None] * P.N_PHASES
        self.t = 0
        self._assembled = False
        now = P.predicates(self.snapshot())
        return self._obs(), self._info(now)

    def step(self, action):
        pos, R_site, grip = parse_action(action)
        d = self.data
        d.ctrl[self.scene.arm_act] = self.ik.solve(d.qpos, pos + self.scene.robot_base, R_site)
        self._grip = min(max(self._grip + GRIPPER_RATE * ((grip > 0) - (grip < 0)), -1.0), 1.0)
        self._set_gripper()
        self.scene.step()
        self.t += 1
        snap = self.snapshot()
        if not self.scene.thread_engaged:
            inside, depth = P.stud_in_hole(snap)
            snap.stud_inside = inside
            if inside:
                self.scene.engage_thread(depth)
                snap.thread_engaged = True
        now = P.predicates(snap)
        old_phase = self.phase
        self.phase = P.advance(self.phase, now)
        for k in range(old_phase + 1, self.phase + 1):
            self.phase_steps[k] = self.t
        newly = now[-1] and not self._assembled
        self._assembled = self._assembled or now[-1]
        if self.cfg.reward == "dense":
            reward = float(newly) + DENSE_PHASE_REWARD * sum(1 for k in range(old_phase + 1, self.phase + 1) if k < 5)
        else:
            reward = float(newly)
        terminated = bool(self._assembled and self.cfg.terminate_on_success)
        return self._obs(), reward, terminated, False, self._info(now)

    def render(self):
        """RGB uint8 [256, 256, 3] from the front camera."""
        return self._render("front", 256, 256)

    def close(self) -> None:
        for r in getattr(self, "_renderers", {}).values():
            r.close()
        self._renderers = {}
        self.scene = None


def build_one_leg(cfg: TaskConfig, seed: int | None) -> gym.Env:
    return OneLegEnv(cfg, seed)

"""robosuite 1.5.1 Panda tasks with the robomimic low-dim layout used by DPPO: lift, can, square.

Observation (state variant), float32, in this order (the reference's low_dim_keys):
    robot0_eef_pos (3) + robot0_eef_quat (4, xyzw) + robot0_gripper_qpos (2) + object
    object: lift 10 (cube_pos, cube_quat, gripper_to_cube_pos), can/square 14 (obj_pos, obj_quat,
    obj_to_robot0_eef_pos, obj_to_robot0_eef_quat) -> Do 19 / 23 / 23.
The object block is assembled key by key in the robosuite <= 1.4.1 layout that robomimic's
datasets (and so the reference's normalization.npz and checkpoints) were made with: robosuite
1.5 reorders PickPlace/NutAssembly's object-state (relative pose first) and flips the sign of
Lift's gripper_to_cube_pos (cube - eef instead of eef - cube); both are undone here.
robot0_eef_quat is the eef *body* orientation, as in 1.4 (robosuite 1.5 keeps that key).
Known robosuite 1.5.1 quirk, kept as robosuite returns it: its object sensors run in the order
(relative pose, object pose), so obj_to_robot0_eef_pos/quat of can/square are computed from the
previous env step's object pose (zeros on the reset observation); robosuite <= 1.4.1 sampled the
object pose first.

Stepping: by default through dppo_robot.envs.fast_osc.FastOSCStepper, which reproduces
robosuite's `env.step` (same controller goal, OSC torques, gripper command and MuJoCo substeps;
trajectories agree with the stock step to rounding, ~1e-15) without its per-substep overhead
(observables refreshed every substep, repeated mj_forward calls, Python-side OSC). fast_step=False
runs robosuite's own step; tests/envs/test_robomimic_fast_step.py compares the two.

Pixel variant (cfg.cameras set): {"state": proprio 9 (eef pos, quat, gripper qpos),
"image_<cam>": uint8 [3, S, S]} with images upright (robomimic flips robosuite's OpenGL
images; so do we).

Action: 7, OSC_POSE delta in the robot base frame at cfg.control_hz (robomimic: 20 Hz), from
robosuite's default Panda controller (load_composite_controller_config(robot="Panda"): BASIC
composite, right arm OSC_POSE, input [-1, 1] -> +-0.05 m, +-0.5 rad axis-angle, kp 150,
damping ratio 1, gripper -1 open / +1 close) — the same numbers as the reference's env_meta.

Episodes: sparse reward 1.0 on every step at which the task's success condition holds (what
robosuite returns with reward_shaping=False, as the reference's env_meta sets); no termination
on success (robomimic's is_done() is always False, so the reference's episodes run to
max_episode_steps) unless cfg.terminate_on_success. info["success"] = the condition this step.

Reset: robosuite samples initial states from the global numpy RNG (placement samplers,
joint noise), so each reset seeds numpy's and python's global RNGs from this env's own
generator: episodes are reproducible per env seed whatever the process layout. hard_reset is
off (as in the reference) and lite_physics off (robosuite's switch for fidelity with datasets
collected with <= 1.4.1, i.e. robomimic's).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import gymnasium as gym
import numpy as np

from dppo_robot.envs.registry import register_task
from dppo_robot.envs.task_config import TaskConfig
from dppo_robot.io_spec import CameraSpec, IOSpec, Slice

if TYPE_CHECKING:
    from dppo_robot.envs.fast_osc import FastOSCStepper

# Step physics exactly as robosuite <= 1.4.1 did (robomimic's data); True is ~10-20 % faster.
LITE_PHYSICS = False

PROPRIO = (
    Slice("robot0_eef_pos", 3, "m", "world", "end-effector (grip site) position"),
    Slice("robot0_eef_quat", 4, "quat_xyzw", "world", "end-effector body orientation"),
    Slice("robot0_gripper_qpos", 2, "m", "", "finger joint positions"),
)

# Names as dppo_robot.bundle.import_dppo.robomimic_spec. OSC input_ref_frame is the robot base,
# whose axes are the world's in these tasks.
ACTION = (
    Slice("delta_pos", 3, "normalized", "world", "OSC_POSE position delta in [-1, 1] (0.05 m at 1)"),
    Slice("delta_rot", 3, "normalized", "world", "OSC_POSE axis-angle rotation delta in [-1, 1] (0.5 rad at 1)"),
    Slice("gripper", 1, "normalized", "", "gripper command: -1 open, +1 close"),
)


@dataclass(frozen=True)
class ObjKey:
    """One robosuite observable of the object block: key, size, sign to apply (1.5 -> 1.4 layout)."""

    key: str
    size: int
    units: str
    frame: str
    sign: float = 1.0
    description: str = ""


@dataclass(frozen=True)
class RobomimicTask:
    name: str
    env_name: str  # robosuite environment class
    object_keys: tuple[ObjKey, ...]
    max_episode_steps: int  # reference value

    @property
    def object_dim(self) -> int:
        return sum(k.size for k in self.object_keys)


def _pose_keys(obj: str) -> tuple[ObjKey, ...]:
    return (
        ObjKey(f"{obj}_pos", 3, "m", "world"),
        ObjKey(f"{obj}_quat", 4, "quat_xyzw", "world"),
        ObjKey(f"{obj}_to_robot0_eef_pos", 3, "m", "ee", description=f"{obj} position in the gripper frame"),
        ObjKey(
            f"{obj}_to_robot0_eef_quat", 4, "quat_xyzw", "ee", description=f"{obj} orientation in the gripper frame"
        ),
    )


TASKS: dict[str, RobomimicTask] = {
    "lift": RobomimicTask(
        "lift",
        "Lift",
        (
            ObjKey("cube_pos", 3, "m", "world"),
            ObjKey("cube_quat", 4, "quat_xyzw", "world"),
            ObjKey("gripper_to_cube_pos", 3, "m", "world", -1.0, "eef position minus cube position"),
        ),
        300,
    ),
    "can": RobomimicTask("can", "PickPlaceCan", _pose_keys("Can"), 300),
    "square": RobomimicTask("square", "NutAssemblySquare", _pose_keys("SquareNut"), 400),
}


def _controller_config() -> dict:
    from robosuite.controllers import load_composite_controller_config
    from robosuite.utils.log_utils import ROBOSUITE_DEFAULT_LOGGER as LOG

    level = LOG.level
    LOG.setLevel(max(level, logging.WARNING))  # one "Loading controller configuration" line per env is noise
    try:
        cfg = load_composite_controller_config(robot="Panda")
    finally:
        LOG.setLevel(level)
    arm = cfg["body_parts"]["right"]
    if arm["type"] != "OSC_POSE" or arm["input_type"] != "delta":
        raise RuntimeError(f"robosuite's default Panda controller is not OSC_POSE delta: {arm}")
    return cfg


class RobosuiteTaskEnv(gym.Env):
    """A raw robosuite task in the robomimic layout (see the module docstring)."""

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"]}

    def __init__(self, task: RobomimicTask, cfg: TaskConfig, seed: int | None = None, fast_step: bool = True) -> None:
        """fast_step: step through FastOSCStepper (same physics and observations, less overhead);
        False: robosuite's own env.step (the reference the fast path is tested against)."""
        import robosuite

        self.task = task
        self.cfg = cfg
        self.cameras = list(cfg.cameras)
        self._rng = np.random.default_rng(seed)
        self._seed_globals()
        self.env = robosuite.make(
            task.env_name,
            robots="Panda",
            controller_configs=_controller_config(),
            has_renderer=False,
            has_offscreen_renderer=bool(self.cameras),
            use_camera_obs=bool(self.cameras),
            use_object_obs=True,
            camera_names=self.cameras or "agentview",
            camera_heights=cfg.image_size,
            camera_widths=cfg.image_size,
            camera_depths=False,
            reward_shaping=cfg.reward == "dense",
            control_freq=cfg.control_hz,
            horizon=cfg.max_episode_steps,
            ignore_done=True,
            hard_reset=False,
            lite_physics=LITE_PHYSICS,
        )
        from robosuite import macros

        self._flip = macros.IMAGE_CONVENTION == "opengl"
        self._fast: FastOSCStepper | None = None
        if fast_step:
            from dppo_robot.envs.fast_osc import FastOSCStepper

            keys = [s.name for s in PROPRIO]
            keys += [f"{c}_image" for c in self.cameras] if self.cameras else [k.key for k in task.object_keys]
            self._fast = FastOSCStepper(self.env, keys)
        n_state = 9 if self.cameras else 9 + task.object_dim
        state_space = gym.spaces.Box(-np.inf, np.inf, (n_state,), np.float32)
        if self.cameras:
            s = cfg.image_size
            spaces: dict[str, gym.Space] = {"state": state_space}
            for cam in self.cameras:
                spaces[f"image_{cam}"] = gym.spaces.Box(0, 255, (3, s, s), np.uint8)
            self.observation_space = gym.spaces.Dict(spaces)
        else:
            self.observation_space = state_space
        self.action_space = gym.spaces.Box(-1.0, 1.0, (7,), np.float32)

    # -- helpers -------------------------------------------------------------------------
    def _seed_globals(self) -> None:
        s = int(self._rng.integers(2**31 - 1))
        np.random.seed(s)
        random.seed(s)

    def _obs(self, raw: dict[str, np.ndarray]) -> Any:
        parts = [raw[s.name] for s in PROPRIO]
        if not self.cameras:
            parts += [raw[k.key] * k.sign for k in self.task.object_keys]
        state = np.concatenate(parts).astype(np.float32)
        if self.cfg.obs_noise_std > 0:
            state += self._rng.normal(0.0, self.cfg.obs_noise_std, state.shape).astype(np.float32)
        if not self.cameras:
            return state
        out: dict[str, np.ndarray] = {"state": state}
        for cam in self.cameras:
            img = raw[f"{cam}_image"]  # [H, W, 3] uint8
            if self._flip:
                img = img[::-1]
            out[f"image_{cam}"] = np.ascontiguousarray(img.transpose(2, 0, 1))
        return out

    @property
    def sim(self):
        return self.env.sim

    def physics_handles(self) -> tuple[Any, Any, int]:
        """(MjModel, MjData, mj_step substeps per env step), for dppo_robot.bench.step_cost."""
        return self.sim.model._model, self.sim.data._data, round(self.env.control_timestep / self.env.model_timestep)

    def success(self) -> bool:
        return bool(self.env._check_success())

    # -- gym API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._seed_globals()
        raw = self.env.reset()
        if self._fast is not None:
            self._fast.bind()
        return self._obs(raw), {"success": False}

    def step(self, action):
        a = np.asarray(action, np.float64).reshape(-1)
        if a.shape != (7,):
            raise ValueError(f"{self.task.name}: action must have 7 values, got shape {np.shape(action)}")
        if self._fast is not None:
            raw = self._fast.step(a)
            reward = self.env.reward(a) if self.cfg.reward == "dense" else 0.0
        else:
            raw, reward, _, _ = self.env.step(a)
        success = self.success()
        r = float(success) if self.cfg.reward == "sparse" else float(reward)
        terminated = bool(success and self.cfg.terminate_on_success)
        return self._obs(raw), r, terminated, False, {"success": success}

    def render(self):
        cam = self.cameras[0] if self.cameras else "agentview"
        img = self.sim.render(camera_name=cam, width=256, height=256)
        return img[::-1] if self._flip else img

    def close(self) -> None:
        env = getattr(self, "env", None)
        if env is not None:
            env.close()
            self.env = None


def build_lift(cfg: TaskConfig, seed: int | None) -> gym.Env:
    return RobosuiteTaskEnv(TASKS["lift"], cfg, seed)


def build_can(cfg: TaskConfig, seed: int | None) -> gym.Env:
    return RobosuiteTaskEnv(TASKS["can"], cfg, seed)


def build_square(cfg: TaskConfig, seed: int | None) -> gym.Env:
    return RobosuiteTaskEnv(TASKS["square"], cfg, seed)


def robomimic_io_spec(cfg: TaskConfig) -> IOSpec:
    task = TASKS[cfg.name]
    obs = list(PROPRIO)
    if not cfg.cameras:
        obs += [Slice(k.key, k.size, k.units, k.frame, k.description) for k in task.object_keys]
    cams = [CameraSpec(c, cfg.image_size, cfg.image_size) for c in cfg.cameras]
    return IOSpec(obs, list(ACTION), float(cfg.control_hz), cams)


_DEFAULTS = {"cond_steps": 1, "act_steps": 4, "control_hz": 20.0, "reward": "sparse"}

register_task(
    "lift",
    build_lift,
    robomimic_io_spec,
    defaults={**_DEFAULTS, "max_episode_steps": 300},
    description="robosuite Lift, Panda, robomimic low-dim layout (Do 19, Da 7)",
)
register_task(
    "can",
    build_can,
    robomimic_io_spec,
    defaults={**_DEFAULTS, "max_episode_steps": 300},
    description="robosuite PickPlaceCan, Panda, robomimic low-dim layout (Do 23, Da 7)",
)
register_task(
    "square",
    build_square,
    robomimic_io_spec,
    defaults={**_DEFAULTS, "max_episode_steps": 400},
    description="robosuite NutAssemblySquare, Panda, robomimic low-dim layout (Do 23, Da 7)",
)

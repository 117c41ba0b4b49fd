"""The simulated Franka's core: a registered task stepped by end-effector targets (ROS-free).

Works with any task of dppo_robot.envs.registry whose action the `ActionMapping` can express
(reach2d: 2-D velocity; lift/can/square: OSC_POSE delta + gripper; one_leg once registered).
The task's observation slices become what the franka topics publish: `ee_position_slice`
(2 or 3 values; 2-D tasks get z = sim.z_m), `ee_quat_slice`, `gripper_slice`, and every
slice also goes into the task_state vector (names "<slice>/<i>").

Episodes and seeds follow dppo_robot.envs.vector_env with one env: the first episode uses
sim.seed, the next ones successive draws of default_rng(sim.seed), so a run through the ROS
stack plays the same initial states as `evaluate` with n_envs 1 and the same seed.

Shapes: obs slices float64 [size]; images uint8 [3, H, W].
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from dppo_robot.deploy.action_map import ActionMapper, PoseTarget
from dppo_robot.deploy.config import ActionMapping, PolicyNodeConfig, SimConfig
from dppo_robot.deploy.pose_math import IDENTITY_QUAT

if TYPE_CHECKING:
    from dppo_robot.envs.task_config import TaskConfig


@dataclass
class SimState:
    """What the simulated robot publishes at one simulated time."""

    time_s: float
    slices: dict[str, np.ndarray]  # obs slice name -> values (env units)
    ee_position: np.ndarray  # [3]
    ee_quat: np.ndarray  # [4] xyzw
    gripper: np.ndarray  # finger positions (may be empty)
    images: dict[str, np.ndarray] = field(default_factory=dict)  # camera -> [3, H, W]
    joints: np.ndarray = field(default_factory=lambda: np.zeros(0))  # arm joint positions [7] (robosuite tasks)


@dataclass
class EpisodeOutcome:
    episode: int
    seed: int
    success: bool
    ret: float
    length: int
    aborted: str = ""  # why the simulation ended the episode early ("policy_held"), "" otherwise


def sim_task_config(cfg: SimConfig, **extra: Any) -> TaskConfig:
    """The TaskConfig the simulated Franka plays: sim.task with its task_overrides and episode length."""
    import dppo_robot.envs  # noqa: F401  (registers the tasks)
    from dppo_robot.envs.registry import default_task_config

    overrides = {**cfg.task_overrides, **extra}
    if cfg.max_episode_steps:
        overrides["max_episode_steps"] = cfg.max_episode_steps
    return default_task_config(cfg.task, **overrides)


class SimFranka:
    """One task env; reset(), step(target) -> SimState; positions from the configured slices."""

    def __init__(self, cfg: SimConfig, action: ActionMapping, task_overrides: dict | None = None) -> None:
        from dppo_robot.envs.registry import make_env, task_io_spec

        self.task = sim_task_config(cfg, **(task_overrides or {}))
        self.spec = task_io_spec(self.task)
        self.cfg = cfg
        self.dt = 1.0 / self.task.control_hz
        self.mapper = ActionMapper(action, [(s.name, s.size) for s in self.spec.action])
        names = [s.name for s in self.spec.obs]
        for what in (cfg.ee_position_slice, cfg.ee_quat_slice, cfg.gripper_slice, *cfg.part_slices):
            if what and what not in names:
                raise ValueError(f"sim: slice '{what}' is not an observation slice of task '{cfg.task}' ({names})")
        if not cfg.ee_position_slice:
            raise ValueError("sim.ee_position_slice must name the task's end-effector position slice")
        self.env = make_env(self.task, cfg.seed)
        self._noise_rng = np.random.default_rng(cfg.seed + 1)
        self.seed = cfg.seed
        self._seed_rng = np.random.default_rng(cfg.seed)
        self.episode = -1
        self.time_s = 0.0
        self.ret = 0.0
        self.length = 0
        self.success = False
        self.held_s = 0.0  # simulated seconds in a row without a target
        self.aborted = ""
        self.state: SimState | None = None
        self._delayed: deque[SimState] = deque()
        self._arm = self._arm_kinematics()
        if cfg.follow == "joints" and self._arm is None:
            raise ValueError(f"sim.follow joints needs a robosuite task with a Panda arm; '{cfg.task}' has none")

    def _arm_kinematics(self):
        """(MuJoCo model, data, arm qpos addresses, grip site id, hand body id) of a robosuite task, else None."""
        rs = getattr(self.env.unwrapped, "env", None)
        if rs is None or not hasattr(rs, "robots"):
            return None
        import mujoco

        model, data = rs.sim.model._model, rs.sim.data._data
        robot = rs.robots[0]
        qadr = np.asarray(robot._ref_joint_pos_indexes)
        site = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, robot.gripper["right"].important_sites["grip_site"])
        hand = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, robot.robot_model.eef_name["right"])
        return model, data, qadr, site, hand

    def joint_target_pose(self, q: np.ndarray) -> PoseTarget:
        """The end-effector pose (the tasks' eef frame: grip site position, hand orientation) at arm
        joint positions q [7]: forward kinematics on the task's own MuJoCo model."""
        import mujoco

        model, data, qadr, site, hand = self._arm
        d = mujoco.MjData(model)
        d.qpos[:] = data.qpos
        d.qpos[qadr] = q
        mujoco.mj_kinematics(model, d)
        w, x, y, z = d.xquat[hand]
        return PoseTarget(d.site_xpos[site].copy(), np.array([x, y, z, w]), None)

    def _split(self, obs) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        state = obs["state"] if isinstance(obs, dict) else obs
        images = (
            {k[len("image_") :]: v for k, v in obs.items() if k.startswith("image_")} if isinstance(obs, dict) else {}
        )
        out, start = {}, 0
        for s in self.spec.obs:
            out[s.name] = np.asarray(state[start : start + s.size], np.float64)
            start += s.size
        return out, images

    def _make_state(self, obs) -> SimState:
        slices, images = self._split(obs)
        pos = np.zeros(3)
        p = slices[self.cfg.ee_position_slice]
        pos[: p.size] = p
        if p.size == 2:
            pos[2] = self.cfg.z_m
        quat = slices[self.cfg.ee_quat_slice] if self.cfg.ee_quat_slice else IDENTITY_QUAT.copy()
        grip = slices[self.cfg.gripper_slice] if self.cfg.gripper_slice else np.zeros(0)
        joints = self._arm[1].qpos[self._arm[2]].copy() if self._arm is not None else np.zeros(0)
        return SimState(self.time_s, slices, pos, np.asarray(quat, np.float64), np.asarray(grip), images, joints)

    def reset(self, start_time_s: float) -> SimState:
        """Start the next episode at simulated time start_time_s."""
        self.episode += 1
        if self.episode > 0:
            self.seed = int(self._seed_rng.integers(2**31 - 1))
        obs, info = self.env.reset(seed=self.seed)
        self.time_s = start_time_s
        self.ret, self.length, self.success = 0.0, 0, bool(info.get("success", False))
        self.held_s, self.aborted = 0.0, ""
        self.state = self._make_state(obs)
        self._delayed.clear()
        return self.state

    def action_for(self, target: PoseTarget | None) -> np.ndarray:
        """The task action that follows `target` from the current state (None: stay put)."""
        assert self.state is not None
        if target is None:
            target = PoseTarget(self.state.ee_position.copy(), self.state.ee_quat.copy(), None)
        return self.mapper.to_action(target, self.state.ee_position, self.state.ee_quat)

    def step(self, target: PoseTarget | None, stack_held: bool = False) -> tuple[SimState, bool]:
        """One env step towards target; returns the new state and whether the episode ended (the task
        ended it, or the stack held longer than sim.abort_after_hold_s). The stack holds when no
        target came (None) or when the policy said so (stack_held: the bridge then streams the
        measured pose, a target that is not the policy's)."""
        action = self.action_for(target)
        obs, reward, term, trunc, info = self.env.step(action)
        self.held_s = self.held_s + self.dt if (target is None or stack_held) else 0.0
        limit = self.cfg.abort_after_hold_s
        if limit > 0 and self.held_s >= limit - 1e-9 and not (term or trunc):
            self.aborted, trunc = "policy_held", True
        self.time_s += self.dt
        self.ret += float(reward)
        self.length += 1
        self.success = self.success or bool(info.get("success", False))
        self.state = self._make_state(obs)
        return self.state, bool(term or trunc)

    def outcome(self) -> EpisodeOutcome:
        return EpisodeOutcome(self.episode, self.seed, self.success, self.ret, self.length, self.aborted)

    @property
    def published_lag_s(self) -> float:
        """Age of the newest published state: obs_latency_s rounded up to whole sim steps."""
        return math.ceil(self.cfg.obs_latency_s / self.dt - 1e-9) * self.dt

    def check_lockstep(self, policy: PolicyNodeConfig) -> None:
        """A lockstep policy tick must not wait for samples the delayed publishing never sends."""
        if policy.lockstep and policy.input_wait_s > 0 and policy.input_latency_s < self.published_lag_s - 1e-9:
            raise ValueError(
                f"sim.obs_latency_s {self.cfg.obs_latency_s} s delays published states by "
                f"{self.published_lag_s:.3f} s at {self.task.control_hz:g} Hz, but policy.input_latency_s is "
                f"{policy.input_latency_s}: every lockstep tick would wait out its timeout; set "
                f"policy.input_latency_s >= {self.published_lag_s:.3f}"
            )

    def published(self, state: SimState) -> SimState | None:
        """Perturbations: the state published now (noise; latency delays it by obs_latency_s)."""
        if self.cfg.obs_noise_std > 0:
            noisy = {k: v + self._noise_rng.normal(0, self.cfg.obs_noise_std, v.shape) for k, v in state.slices.items()}
            state = SimState(state.time_s, noisy, state.ee_position, state.ee_quat, state.gripper, state.images)
        if self.cfg.obs_latency_s <= 0:
            return state
        self._delayed.append(state)
        out = None
        while self._delayed and self._delayed[0].time_s <= state.time_s - self.cfg.obs_latency_s + 1e-9:
            out = self._delayed.popleft()
        return out

    def close(self) -> None:
        self.env.close()

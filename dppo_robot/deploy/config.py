"""Typed deployment configs, loaded strictly from YAML with dppo_robot.typed_config.load_yaml.

One file (`DeployConfig`) configures every node: `policy` (topic mapping of the bundle's obs
slices, staleness limits, chunk scheduling), `bridge` (stream rate, latency, safety),
`action` (how action slices become an end-effector target; shared by the bridge and the
simulated Franka), `sim` (task and perturbations) and `cameras`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from dataclasses import field as _field
from typing import Any, Literal

SOURCES = ("ee_pose", "joint_states", "gripper", "part_poses", "task_state")
FIELDS = {
    "ee_pose": ("position", "position_xy", "quat_xyzw"),
    "joint_states": ("position", "velocity"),
    "gripper": ("position", "width"),
    "part_poses": ("position", "quat_xyzw", "pose"),
    "task_state": ("values",),
}
INTERPOLATED = ("ee_pose", "joint_states")  # robot state: interpolated to grid times


@dataclass
class ObsSource:
    """Where one observation slice of the bundle comes from.

    source: ee_pose (PoseStamped: position [3], position_xy [2], quat_xyzw [4]); joint_states
    (JointState position/velocity of `joints`, in that order); gripper (JointState: finger
    positions, or width = sum of fingers [1]); part_poses (PoseArray pose `index`: position,
    quat_xyzw, pose = both [7]); task_state (JointState whose names are "<slice>/<i>": values
    of slice `key`, default the slice's own name).

    scale / offset map the message's convention to the one the policy was trained in:
    value = scale * raw + offset, per element (one value applies to every element; empty = 1 / 0).
    Example: franka_gripper publishes both fingers as +width/2, robosuite's Panda has its second
    finger joint negative: `scale: [1.0, -1.0]`.
    """

    name: str  # the bundle's obs slice name
    source: str
    field: str = "position"
    joints: list[str] = _field(default_factory=list)
    index: int = 0
    key: str = ""
    scale: list[float] = _field(default_factory=list)  # per element (sign and scale), env units / message units
    offset: list[float] = _field(default_factory=list)  # per element, env units

    def validate(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"obs slice '{self.name}': source {self.source!r} is not one of {list(SOURCES)}")
        if self.source == "task_state" and self.field == "position":
            self.field = "values"
        if self.field not in FIELDS[self.source]:
            raise ValueError(
                f"obs slice '{self.name}': field {self.field!r} of {self.source} is not one of "
                f"{list(FIELDS[self.source])}"
            )
        if any(not math.isfinite(v) for v in [*self.scale, *self.offset]):
            raise ValueError(f"obs slice '{self.name}': scale / offset must be finite numbers")


@dataclass
class Topics:
    """Topic names (franka_ros2 / realsense-ros names by default)."""

    ee_pose: str = "/franka_robot_state_broadcaster/current_pose"
    joint_states: str = "/joint_states"
    gripper: str = "/franka_gripper/joint_states"
    part_poses: str = "/part_poses"
    task_state: str = "/task_state"
    robot_mode: str = "/franka/robot_mode"  # std_msgs/UInt8 = franka_msgs/FrankaRobotState.robot_mode
    # franka_msgs/FrankaRobotState (1 kHz, reliable): read by robot_mode_relay, which fills robot_mode
    robot_state: str = "/franka_robot_state_broadcaster/robot_state"
    chunk: str = "/policy/action_chunk"
    tick: str = "/policy/tick"
    target_pose: str = "/target_pose"
    gripper_command: str = "/dppo/gripper_command"
    episode: str = "/sim/episode"
    # camera name -> image topic; camera_info is the sibling "camera_info" topic.
    cameras: dict[str, str] = _field(default_factory=dict)


@dataclass
class PolicyNodeConfig:
    """The policy node: obs mapping in the bundle's slice order, limits, scheduling."""

    obs: list[ObsSource] = _field(default_factory=list)
    action_names: list[str] = _field(default_factory=list)  # the bundle's action slices, in order
    control_hz: float = 10.0
    # Max age (s) of the newest sample of an input at a grid time; older -> no chunk, hold.
    max_age_s: dict[str, float] = _field(default_factory=dict)
    default_max_age_s: float = 0.25
    # Observation values farther than this fraction of the normalisation range outside
    # [obs_min, obs_max] are out of range: no chunk, a diagnostic.
    obs_range_margin: float = 1.0
    # Floor (env units) of the span used above: a slice whose demonstrations barely moved (a resting
    # part's quaternion spans ~0.01) is judged against this span instead of its own.
    obs_range_min_span: float = 0.1
    # Run the chain when fewer than this many points of the pending chunk remain (0 = Ta rule:
    # replan after act_steps points).
    replan_below: int = 0
    # Chunk point i executes at obs_time + (i + action_offset) / control_hz.
    action_offset: int = 1
    # Wall seconds a tick may wait for every input to have a sample stamped at or after the grid
    # time (0 = tick at once with what has arrived). The lockstep simulation sets it so that no
    # tick runs on samples still in flight.
    input_wait_s: float = 0.0
    # Latency (s) of the inputs that input_wait_s waits for: a tick at grid time t waits for samples
    # stamped at or after t - input_latency_s. With a simulation that delays observations by
    # sim.obs_latency_s, this must cover that delay rounded up to the sim step.
    input_latency_s: float = 0.0
    # Lockstep with a simulation: a chunk must be acknowledged by its readers before the tick
    # that announces it goes out (so the bridge always has it before the clock moves on).
    lockstep: bool = False
    seed: int = 0
    intra_op_threads: int = 1
    warmup_iters: int = 2
    diagnostics_hz: float = 1.0

    def validate(self) -> None:
        if self.control_hz <= 0:
            raise ValueError(f"control_hz must be > 0, got {self.control_hz}")
        names = [o.name for o in self.obs]
        if len(set(names)) != len(names):
            raise ValueError(f"obs slice names repeat: {names}")
        if self.default_max_age_s <= 0:
            raise ValueError("default_max_age_s must be > 0")
        if self.replan_below < 0:
            raise ValueError("replan_below must be >= 0")


@dataclass
class ActionMapping:
    """How action slices become an end-effector target (and back, in the simulated Franka).

    delta_pose: target position = measured position at the point's start + position_scale_m *
    action[position_slice] (2 or 3 values; 2 moves x, y); rotation (axis-angle) likewise.
    absolute_pose: action[position_slice] is the target position (quat_slice its xyzw).
    gripper_slice: one value, -1 open .. +1 close.
    """

    mode: Literal["delta_pose", "absolute_pose"] = "delta_pose"
    position_slice: str = ""
    position_scale_m: float = 0.05
    rotation_slice: str = ""
    rotation_scale_rad: float = 0.5
    quat_slice: str = ""
    gripper_slice: str = ""
    clip_normalized: bool = True  # clip delta actions to [-1, 1] as the envs do

    def validate(self) -> None:
        if not self.position_slice:
            raise ValueError("action.position_slice must name the action slice that moves the end effector")
        if self.position_scale_m <= 0:
            raise ValueError("position_scale_m must be > 0")


@dataclass
class SafetyConfig:
    """Workspace box (m, base frame) and per-stream-tick motion limits.

    The bridge also exposes these as ROS parameters (safety.workspace_min_m, ...); this block is
    their default. The per-tick limits are speeds: a target stamped t may be at most
    max_step_m * max(1, (t - t_prev) * stream_hz) from the previous target (stamp t_prev).
    """

    workspace_min_m: list[float] = _field(default_factory=lambda: [0.3, -0.55, 0.005])
    workspace_max_m: list[float] = _field(default_factory=lambda: [0.8, 0.55, 0.4])
    max_step_m: float = 0.02  # translation per stream tick
    max_step_rad: float = 0.1  # rotation per stream tick

    def validate(self) -> None:
        if len(self.workspace_min_m) != 3 or len(self.workspace_max_m) != 3:
            raise ValueError("workspace_min_m / workspace_max_m need 3 values (x, y, z)")
        if not all(math.isfinite(v) for v in [*self.workspace_min_m, *self.workspace_max_m]):
            raise ValueError("workspace_min_m / workspace_max_m must be finite")
        if any(lo >= hi for lo, hi in zip(self.workspace_min_m, self.workspace_max_m)):
            raise ValueError(f"workspace box is empty: {self.workspace_min_m} .. {self.workspace_max_m}")
        if not (self.max_step_m > 0 and self.max_step_rad > 0):
            raise ValueError("max_step_m and max_step_rad must be > 0")

    def widened_from(self, old: SafetyConfig) -> list[str]:
        """The limits that are wider here than in `old` (empty when none is)."""
        out = []
        axes = "xyz"
        for i in range(3):
            if self.workspace_min_m[i] < old.workspace_min_m[i]:
                out.append(f"workspace_min_m {axes[i]} {old.workspace_min_m[i]} -> {self.workspace_min_m[i]}")
            if self.workspace_max_m[i] > old.workspace_max_m[i]:
                out.append(f"workspace_max_m {axes[i]} {old.workspace_max_m[i]} -> {self.workspace_max_m[i]}")
        if self.max_step_m > old.max_step_m:
            out.append(f"max_step_m {old.max_step_m} -> {self.max_step_m}")
        if self.max_step_rad > old.max_step_rad:
            out.append(f"max_step_rad {old.max_step_rad} -> {self.max_step_rad}")
        return out


@dataclass
class GripperConfig:
    """The franka_gripper action interface the bridge drives (franka_msgs Move / Grasp).

    Action names are `namespace`/`move_action` and `namespace`/`grasp_action`; a namespaced
    franka bringup (franka.config.yaml `namespace`) prefixes the namespace. A goal waits up to
    server_timeout_s for the server, up to result_timeout_s for its result, and is sent again up
    to `retries` times when the server is missing, rejects it or reports failure.
    """

    enabled: bool = True  # send action goals when franka_msgs is importable (the Float64 topic is always published)
    namespace: str = "/franka_gripper"
    move_action: str = "move"
    grasp_action: str = "grasp"
    open_width_m: float = 0.08
    grasp_width_m: float = 0.0
    speed_mps: float = 0.1
    force_n: float = 20.0
    epsilon_inner_m: float = 0.08  # franka_gripper default 0.005; wide so a grasp of any width succeeds
    epsilon_outer_m: float = 0.08
    server_timeout_s: float = 2.0
    result_timeout_s: float = 10.0
    retries: int = 2

    def action_name(self, action: str) -> str:
        return f"{self.namespace.rstrip('/')}/{action}" if self.namespace else action

    def validate(self) -> None:
        if self.retries < 0:
            raise ValueError("gripper.retries must be >= 0")
        if not (self.server_timeout_s > 0 and self.result_timeout_s > 0):
            raise ValueError("gripper.server_timeout_s and result_timeout_s must be > 0")
        if not (self.move_action and self.grasp_action):
            raise ValueError("gripper.move_action and gripper.grasp_action must name the actions")


@dataclass
class BridgeConfig:
    stream_hz: float = 100.0
    # Targets are published this far ahead of the time they should be reached (controller lag).
    latency_s: float = 0.0
    # Hold when the policy's last tick is older than this (s) or said hold; 0 = 2 control periods.
    hold_timeout_s: float = 0.0
    # Hold when the measured end-effector pose is older than this (s).
    max_pose_age_s: float = 0.2
    # PoseStamped for a Cartesian impedance controller (a JointTrajectory output needs IK: not yet).
    output: Literal["pose"] = "pose"
    frame_id: str = "base"
    safety: SafetyConfig = _field(default_factory=SafetyConfig)
    gripper: GripperConfig = _field(default_factory=GripperConfig)

    def validate(self) -> None:
        if self.stream_hz <= 0:
            raise ValueError("stream_hz must be > 0")
        if self.latency_s < 0 or self.hold_timeout_s < 0:
            raise ValueError("latency_s and hold_timeout_s must be >= 0")


@dataclass
class SimConfig:
    """The simulated Franka: a registered task stepped in lockstep with simulated time."""

    task: str = "reach2d"
    max_episode_steps: int = 0  # 0 = the task's default
    # Other TaskConfig fields to override (e.g. reward: dense, cameras: [agentview]).
    task_overrides: dict[str, Any] = _field(default_factory=dict)
    seed: int = 0
    # Obs slices published as the franka topics (the rest go to task_state only).
    ee_position_slice: str = ""
    ee_quat_slice: str = ""
    gripper_slice: str = ""
    part_slices: list[str] = _field(default_factory=list)
    # Perturbations: extra delay of published observations (s), Gaussian noise on them (env units).
    obs_latency_s: float = 0.0
    obs_noise_std: float = 0.0
    # Wall seconds to wait for the policy tick / bridge target before going on (the stack holds).
    lockstep_timeout_s: float = 2.0
    # End an episode as a failure ("policy_held") after this many simulated seconds in a row without
    # a target from the bridge (the stack holding, e.g. on out-of-range observations); 0 = never.
    # A real operator would stop such a trial; without it a held episode runs to its step limit.
    abort_after_hold_s: float = 0.0
    z_m: float = 0.0  # z published for 2-D tasks


@dataclass
class CameraConfig:
    name: str = "front"
    serial: str = ""
    width: int = 640
    height: int = 480
    fps: int = 30
    recording: str = ""  # a .bag/.db3 recording to play back instead of a device
    topic_prefix: str = "/camera/camera"


@dataclass
class DeployConfig:
    """One YAML for the whole stack."""

    topics: Topics = _field(default_factory=Topics)
    policy: PolicyNodeConfig = _field(default_factory=PolicyNodeConfig)
    action: ActionMapping = _field(default_factory=lambda: ActionMapping(position_slice="delta_pos"))
    bridge: BridgeConfig = _field(default_factory=BridgeConfig)
    sim: SimConfig = _field(default_factory=SimConfig)
    cameras: list[CameraConfig] = _field(default_factory=list)

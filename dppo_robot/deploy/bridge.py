"""The Franka bridge's logic: execute timestamped chunks as a safe, interpolated target stream.

At each stream tick (default 100 Hz) at time now the bridge evaluates the chunks at
t = now + latency_s (latency compensation): the newest chunk with a point covering t wins;
points already past are never used. Point i's target is computed once, from the measured pose
at the start of its interval (delta actions) and the stream interpolates from that pose to it.

Safety, in order: stop (service or robot_mode REFLEX / USER_STOPPED, latched until resume),
hold (no chunk covering t, the policy's tick stale or saying hold, measured pose stale,
non-finite target): the last published target is repeated (or, with none recent, the
measured pose); then the workspace box clips the position (reported), then per-tick
translation / rotation limits relative to the previous target. Every output, holds included,
passes the clip and the limits, so no published target is farther from the previous one (or,
for the first, from the measured pose) than the limits allow.

Start-up outside the box is refused: with no recent target to continue from and the measured
pose outside the workspace box, the bridge publishes nothing and says so (move the arm into the
box, or widen the box while the bridge is inactive). It never starts motion on its own.

Shapes: positions [3] m, quats [4] xyzw.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from dppo_robot.deploy.action_map import ActionMapper, PoseTarget
from dppo_robot.deploy.chunks import TimedChunk
from dppo_robot.deploy.config import BridgeConfig, SafetyConfig
from dppo_robot.deploy.obs_history import Sample, SampleBuffer
from dppo_robot.deploy.pose_math import nlerp, normalize_quat, slerp_limit


class RobotMode(IntEnum):
    """franka_msgs/FrankaRobotState.robot_mode values."""

    OTHER = 0
    IDLE = 1
    MOVE = 2
    GUIDING = 3
    REFLEX = 4
    USER_STOPPED = 5
    AUTOMATIC_ERROR_RECOVERY = 6


STOP_MODES = (RobotMode.REFLEX, RobotMode.USER_STOPPED)


@dataclass
class StreamTarget:
    """What one stream tick publishes (or, with publish=False, nothing at all)."""

    stamp_s: float
    position: np.ndarray
    quat: np.ndarray
    gripper: float | None = None
    publish: bool = True
    hold: bool = False
    stopped: bool = False
    clipped: bool = False
    limited: bool = False
    refused: bool = False  # nothing published: start-up outside the workspace box
    reasons: list[str] = field(default_factory=list)


class BridgeCore:
    """Chunks, measured poses, mode and stop state -> one StreamTarget per tick."""

    def __init__(self, cfg: BridgeConfig, mapper: ActionMapper, control_hz: float) -> None:
        self.cfg = cfg
        self.mapper = mapper
        self.dt = 1.0 / control_hz
        self.hold_timeout_s = cfg.hold_timeout_s or 2.0 * self.dt
        self.set_safety(cfg.safety)
        self.chunks: deque[TimedChunk] = deque(maxlen=2)
        self._targets: dict[tuple[int, int], PoseTarget] = {}  # (chunk seq, point) -> target
        self._seq = 0
        # measured poses by time (a 1 kHz pose keeps as much history as a 30 Hz one): anchors are
        # looked up at point starts up to a few control periods back
        window = max(1.0, 4 * self.dt + self.hold_timeout_s + cfg.latency_s + cfg.max_pose_age_s)
        self.poses = SampleBuffer(window)
        self.last: StreamTarget | None = None
        self.last_tick_s: float | None = None
        self.tick_hold_reason = ""
        self.stopped_reason = ""
        self.robot_mode: int | None = None
        self.counters = {
            "ticks": 0,
            "holds": 0,
            "clipped": 0,
            "limited": 0,
            "dropped_points": 0,
            "stops": 0,
            "refused": 0,
        }
        self.last_clip: str = ""

    def set_safety(self, safety: SafetyConfig) -> None:
        """Apply (validated) safety limits; the next tick uses them."""
        safety.validate()
        self.cfg.safety = safety
        self.lo = np.asarray(safety.workspace_min_m, np.float64)
        self.hi = np.asarray(safety.workspace_max_m, np.float64)

    # ---------------------------------------------------------------- inputs
    def on_chunk(self, chunk: TimedChunk) -> None:
        """A new chunk; an empty one cancels execution (hold)."""
        if len(chunk.actions) == 0:
            self.chunks.clear()
            return
        self._seq += 1
        chunk.seq = self._seq
        self.chunks.append(chunk)

    def on_policy_tick(self, stamp_s: float, hold_reason: str = "") -> None:
        self.last_tick_s = stamp_s
        self.tick_hold_reason = hold_reason
        if hold_reason:
            self.chunks.clear()

    def on_pose(self, stamp_s: float, position: np.ndarray, quat: np.ndarray) -> None:
        self.poses.add(Sample(stamp_s, {"p": np.asarray(position, np.float64), "q": normalize_quat(quat)}))

    def newest_pose(self) -> tuple[float, np.ndarray, np.ndarray] | None:
        s = self.poses.newest
        return None if s is None else (s.stamp_s, s.values["p"], s.values["q"])

    def on_robot_mode(self, mode: int) -> None:
        self.robot_mode = int(mode)
        if mode in STOP_MODES and not self.stopped_reason:
            self.stop(f"robot_mode {RobotMode(mode).name}")

    def stop(self, reason: str = "stop requested") -> None:
        self.stopped_reason = reason
        self.chunks.clear()
        self.counters["stops"] += 1

    def resume(self) -> tuple[bool, str]:
        if self.robot_mode in STOP_MODES:
            return False, f"robot_mode is {RobotMode(self.robot_mode).name}; recover the robot first"
        self.stopped_reason = ""
        self.last = None  # restart from the measured pose
        return True, "resumed"

    # ---------------------------------------------------------------- helpers
    def pose_at(self, t: float) -> tuple[np.ndarray, np.ndarray] | None:
        """Latest measured pose at or before t (None when every kept pose is later)."""
        before, _ = self.poses.around(t)
        return None if before is None else (before.values["p"], before.values["q"])

    def _outside(self, p: np.ndarray) -> bool:
        return bool(np.any(p < self.lo) or np.any(p > self.hi))

    def _point_target(self, chunk: TimedChunk, i: int) -> PoseTarget | None:
        key = (chunk.seq, i)
        if key not in self._targets:
            start = chunk.times_s[i] - chunk.dt_s
            anchor = self.pose_at(start)
            if anchor is None:
                return None
            self._targets[key] = self.mapper.to_target(chunk.actions[i], *anchor)
            if len(self._targets) > 256:
                live = {c.seq for c in self.chunks}
                self._targets = {k: v for k, v in self._targets.items() if k[0] in live}
        return self._targets[key]

    def _fresh_last(self, now: float) -> StreamTarget | None:
        """The last published target, unless it is older than the hold timeout (then the measured pose rules)."""
        if self.last is not None and now - self.last.stamp_s <= self.hold_timeout_s + self.cfg.latency_s:
            return self.last
        return None

    def _nothing(self, now: float, reason: str, stopped: bool = False, refused: bool = False) -> StreamTarget:
        return StreamTarget(
            now, np.zeros(3), np.array([0, 0, 0, 1.0]), None, False, True, stopped, refused=refused, reasons=[reason]
        )

    def _refuse_outside(self, now: float) -> StreamTarget | None:
        """Nothing to continue from and the measured pose outside the box: refuse (publish nothing)."""
        if self._fresh_last(now) is not None:
            return None
        pose = self.newest_pose()
        if pose is None or not self._outside(pose[1]):
            return None
        self.counters["refused"] += 1
        return self._nothing(
            now,
            f"measured position {np.round(pose[1], 4).tolist()} is outside the workspace box "
            f"{self.lo.tolist()}..{self.hi.tolist()}: publishing nothing; move the arm into the box "
            "(or widen the box while the bridge is inactive)",
            refused=True,
        )

    def _hold(self, now: float, reason: str, stopped: bool = False) -> StreamTarget:
        """Repeat the last target (if recent), else the measured pose (if recent), else publish nothing."""
        self.counters["holds"] += 1
        refused = self._refuse_outside(now)
        if refused is not None:
            refused.stopped = stopped
            return refused
        last = self._fresh_last(now)
        pose = self.newest_pose()
        if last is not None:
            p, q, g = last.position, last.quat, last.gripper
        elif pose is not None and now - pose[0] <= self.cfg.max_pose_age_s:
            _, p, q = pose
            g = None
        else:  # nothing recent is known: publish nothing
            return self._nothing(now, reason, stopped)
        out = StreamTarget(now + self.cfg.latency_s, p.copy(), q.copy(), g, True, True, stopped, reasons=[reason])
        return self._safe(out)

    # ---------------------------------------------------------------- the tick
    def tick(self, now_s: float) -> StreamTarget:
        self.counters["ticks"] += 1
        if self.stopped_reason:
            return self._hold(now_s, f"stopped: {self.stopped_reason}", stopped=True)
        if self.robot_mode in STOP_MODES:
            self.stop(f"robot_mode {RobotMode(self.robot_mode).name}")
            return self._hold(now_s, f"stopped: {self.stopped_reason}", stopped=True)
        pose = self.newest_pose()
        if pose is None or now_s - pose[0] > self.cfg.max_pose_age_s:
            return self._hold(now_s, "measured end-effector pose missing or stale")
        refused = self._refuse_outside(now_s)
        if refused is not None:
            return refused
        if self.last_tick_s is None or now_s - self.last_tick_s > self.hold_timeout_s:
            return self._hold(now_s, "policy tick missing or stale")
        if self.tick_hold_reason:
            return self._hold(now_s, f"policy holds: {self.tick_hold_reason}")
        t = now_s + self.cfg.latency_s
        chunk, i = None, None
        for c in reversed(self.chunks):
            i = c.covering(t)
            if i is not None:
                chunk = c
                break
        if chunk is None or i is None:
            return self._hold(now_s, "no chunk point covers t")
        target = self._point_target(chunk, i)
        start = self.pose_at(chunk.times_s[i] - chunk.dt_s)
        if target is None or start is None:
            return self._hold(now_s, "no measured pose at the start of the point")
        w = float(np.clip((t - (chunk.times_s[i] - chunk.dt_s)) / chunk.dt_s, 0.0, 1.0))
        pos = (1 - w) * start[0] + w * target.position
        quat = nlerp(start[1], target.quat, w)
        if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(quat))):
            return self._hold(now_s, "non-finite target")
        return self._safe(StreamTarget(t, pos, quat, target.gripper))

    def _safe(self, out: StreamTarget) -> StreamTarget:
        clipped = np.clip(out.position, self.lo, self.hi)
        if np.any(clipped != out.position):
            out.clipped = True
            self.counters["clipped"] += 1
            self.last_clip = (
                f"target {np.round(out.position, 4).tolist()} outside workspace "
                f"{self.lo.tolist()}..{self.hi.tolist()}; clipped to {np.round(clipped, 4).tolist()}"
            )
            out.reasons.append(self.last_clip)
            out.position = clipped
        last = self._fresh_last(out.stamp_s - self.cfg.latency_s)
        if last is not None:
            ref_pos, ref_quat = last.position, last.quat
            # limits are per stream period: a longer gap since the last target allows proportionally more
            periods = max(1.0, (out.stamp_s - last.stamp_s) * self.cfg.stream_hz)
        else:  # from the measured pose: the time since it was measured
            ref_t, ref_pos, ref_quat = self.newest_pose()
            periods = max(1.0, (out.stamp_s - ref_t) * self.cfg.stream_hz)
        max_m, max_rad = self.cfg.safety.max_step_m * periods, self.cfg.safety.max_step_rad * periods
        d = out.position - ref_pos
        n = float(np.linalg.norm(d))
        if n > max_m:
            out.position = ref_pos + d * (max_m / n)
            out.limited = True
        out.quat, rot_limited = slerp_limit(ref_quat, out.quat, max_rad)
        out.limited = out.limited or rot_limited
        if out.limited:
            self.counters["limited"] += 1
            out.reasons.append(
                f"per-tick motion limit ({self.cfg.safety.max_step_m} m, {self.cfg.safety.max_step_rad} rad)"
            )
        self.last = out
        return out

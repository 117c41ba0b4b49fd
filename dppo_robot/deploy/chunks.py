"""Timestamped action chunks, chunk scheduling and the policy's control tick (ROS-free).

A chunk made from the observation history ending at obs_time carries Tp action points;
point i executes at obs_time + (i + action_offset) / control_hz (the time by which the robot
should have carried it out). The chain runs again when fewer than `replan_below` points of
the pending chunk remain (default Tp - Ta + 1: a new chunk every Ta ticks, as in simulation).

Shapes: actions [Tp, Da] float32 env units; times_s [Tp].
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from dppo_robot.deploy.config import PolicyNodeConfig
from dppo_robot.deploy.obs_history import TIME_EPS_S, ObsHistoryBuilder, ObsResult


@dataclass
class TimedChunk:
    """Action points with their execution times (s, on the ROS clock)."""

    stamp_s: float  # obs time the chunk was made from
    dt_s: float  # 1 / control_hz
    actions: np.ndarray  # [Tp, Da]
    offset: int = 1
    names: list[str] = field(default_factory=list)  # flat action element names, Da
    seq: int = 0  # arrival number at the bridge (keys its per-point target cache)

    @property
    def times_s(self) -> np.ndarray:
        return self.stamp_s + (np.arange(len(self.actions)) + self.offset) * self.dt_s

    def remaining(self, now_s: float) -> int:
        """Points whose execution time is still ahead of now_s."""
        return int(np.sum(self.times_s > now_s + TIME_EPS_S))

    def covering(self, t_s: float) -> int | None:
        """Index i of the point executing over (t_i - dt, t_i] that contains t_s, else None."""
        if len(self.actions) == 0:
            return None
        i = int(np.ceil((t_s - self.stamp_s - TIME_EPS_S) / self.dt_s - self.offset))
        return i if 0 <= i < len(self.actions) else None


def flat_action_names(slices: list[tuple[str, int]]) -> list[str]:
    """["vel/0", "vel/1", ...] for the bundle's action slices (name, size)."""
    return [f"{n}/{i}" for n, size in slices for i in range(size)]


class ChunkScheduler:
    """Decides at each tick whether the chain runs (pending chunk low or absent)."""

    def __init__(self, horizon_steps: int, act_steps: int, replan_below: int = 0) -> None:
        self.replan_below = replan_below or (horizon_steps - act_steps + 1)
        self.pending: TimedChunk | None = None

    def due(self, now_s: float) -> bool:
        return self.pending is None or self.pending.remaining(now_s) < self.replan_below

    def accept(self, chunk: TimedChunk) -> None:
        self.pending = chunk

    def reset(self) -> None:
        self.pending = None


@dataclass
class TickResult:
    """One control tick: a chunk (or None), whether the stack should hold, and why."""

    time_s: float
    chunk: TimedChunk | None = None
    hold: bool = False
    ran_chain: bool = False
    reason: str = ""
    inference_s: float = float("nan")
    obs: ObsResult | None = None


class PolicyCore:
    """History builder + scheduler + runtime: what the policy node calls at each control tick.

    runtime: a dppo_robot.runtime.policy_runtime.PolicyRuntime (or anything with .manifest and
    .predict(obs, images, rng=...)).
    """

    def __init__(self, runtime, cfg: PolicyNodeConfig) -> None:
        m = runtime.manifest
        self.runtime = runtime
        self.cfg = cfg
        self.dt = 1.0 / cfg.control_hz
        sizes = {s.name: s.size for s in m.obs_spec}
        self.builder = ObsHistoryBuilder(
            cfg.obs,
            [sizes.get(o.name, 0) for o in cfg.obs],
            m.cond_steps,
            cfg.control_hz,
            cameras={c.name: (c.height, c.width) for c in m.cameras},
            max_age_s=cfg.max_age_s,
            default_max_age_s=cfg.default_max_age_s,
            obs_min=np.asarray(m.normalization.obs_min),
            obs_max=np.asarray(m.normalization.obs_max),
            range_margin=cfg.obs_range_margin,
            range_min_span=cfg.obs_range_min_span,
            input_latency_s=cfg.input_latency_s,
        )
        self.scheduler = ChunkScheduler(m.horizon_steps, m.act_steps, cfg.replan_below)
        self.names = flat_action_names([(s.name, s.size) for s in m.action_spec])
        self.rng = np.random.default_rng(cfg.seed)
        self.last_error = ""

    def tick(self, now_s: float) -> TickResult:
        """Assemble the history at now_s; run the chain when due; never raise on bad input."""
        res = TickResult(now_s)
        if not self.scheduler.due(now_s):
            # Inputs are still checked so that a dead input makes the stack hold within a tick.
            obs = self.builder.assemble(now_s)
            if not obs.ok:
                res.hold, res.reason, res.obs = True, obs.reason, obs
                self.scheduler.reset()
            return res
        obs = self.builder.assemble(now_s)
        res.obs = obs
        if not obs.ok:
            res.hold, res.reason = True, obs.reason
            self.scheduler.reset()
            return res
        t0 = time.perf_counter()
        try:
            actions = self.runtime.predict(obs.obs, obs.images or None, rng=self.rng)
        except Exception as e:  # ObservationError, onnxruntime failures: no chunk, hold, report
            res.hold, res.reason = True, f"inference failed: {e}"
            self.scheduler.reset()
            return res
        res.inference_s = time.perf_counter() - t0
        if not np.all(np.isfinite(actions)):
            res.hold, res.reason = True, "policy produced non-finite actions"
            self.scheduler.reset()
            return res
        res.chunk = TimedChunk(now_s, self.dt, np.asarray(actions, np.float32), self.cfg.action_offset, self.names)
        res.ran_chain = True
        self.scheduler.accept(res.chunk)
        return res

    def reset(self) -> None:
        self.scheduler.reset()
        for b in self.builder.buffers.values():
            b.clear()

"""Observation history on the control time grid, from stamped samples of several inputs.

Each input channel ("ee_pose", "joint_states", "gripper", "part_poses", "task_state",
"image:<camera>") keeps a short buffer of `Sample`s ordered by header stamp. At a control tick
t the To grid times are t - (To - 1 - j) / control_hz, j = 0..To-1; for each grid time every
obs slice takes the latest sample at or before it (robot state channels are interpolated
between the samples around it), and the sample's age must be within the input's staleness
limit.

Shapes: obs [To, Do] float32 (env units, the bundle's slice order); images[camera]
[To, 3, H, W] uint8; Sample.values[field] any float array (part poses [N, 3] / [N, 4]).
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from dppo_robot.deploy.config import INTERPOLATED, ObsSource
from dppo_robot.deploy.pose_math import nlerp

# Times are float seconds on the ROS clock (~1.8e9 s of wall time: resolution ~2.4e-7 s), so
# comparisons of stamps with grid times allow this much.
TIME_EPS_S = 1e-5


@dataclass
class Sample:
    """One message's worth of data: header stamp (s), named arrays, element names (joints)."""

    stamp_s: float
    values: dict[str, np.ndarray]
    names: tuple[str, ...] = ()


class SampleBuffer:
    """Samples of one input ordered by stamp (late arrivals are inserted in place), kept by time.

    The buffer keeps every sample stamped within `window_s` of the newest one, plus the newest
    sample older than that (the one a grid time at the window's start reads). Sizing by time,
    not count, makes a 1 kHz input cover the same history as a 15 Hz one.
    """

    def __init__(self, window_s: float = 1.0) -> None:
        if not window_s > 0:
            raise ValueError(f"sample buffer window must be > 0 s, got {window_s}")
        self.window_s = float(window_s)
        self._samples: deque[Sample] = deque()
        self._stamps: deque[float] = deque()
        self.received = 0

    def add(self, s: Sample) -> None:
        self.received += 1
        if not self._stamps or s.stamp_s >= self._stamps[-1]:
            self._samples.append(s)
            self._stamps.append(s.stamp_s)
        else:
            i = bisect.bisect_right(self._stamps, s.stamp_s)
            if i == 0 and self._stamps[0] < self._stamps[-1] - self.window_s:
                return  # older than everything kept
            self._samples.insert(i, s)
            self._stamps.insert(i, s.stamp_s)
        # drop samples older than the window, keeping the newest one before its start
        start = self._stamps[-1] - self.window_s
        while len(self._stamps) > 1 and self._stamps[1] <= start:
            self._stamps.popleft()
            self._samples.popleft()

    def __len__(self) -> int:
        return len(self._samples)

    @property
    def newest(self) -> Sample | None:
        return self._samples[-1] if self._samples else None

    def around(self, t: float) -> tuple[Sample | None, Sample | None]:
        """(latest sample with stamp <= t, earliest with stamp > t)."""
        i = bisect.bisect_right(self._stamps, t + TIME_EPS_S)
        before = self._samples[i - 1] if i > 0 else None
        after = self._samples[i] if i < len(self._samples) else None
        return before, after

    def clear(self) -> None:
        self._samples.clear()
        self._stamps.clear()


def _interp_values(a: Sample, b: Sample, t: float) -> dict[str, np.ndarray]:
    w = (t - a.stamp_s) / max(b.stamp_s - a.stamp_s, 1e-12)
    out = {}
    for k, va in a.values.items():
        vb = b.values.get(k)
        if vb is None or np.shape(vb) != np.shape(va) or a.names != b.names:
            out[k] = va
        elif k == "quat_xyzw":
            out[k] = nlerp(va, vb, w)
        else:
            out[k] = (1 - w) * np.asarray(va, np.float64) + w * np.asarray(vb, np.float64)
    return out


def extract(src: ObsSource, s: Sample, values: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The obs slice `src` from a sample's (possibly interpolated) values, with the slice's scale and
    offset applied; KeyError / ValueError if absent or mis-sized."""
    raw = np.asarray(_raw(src, s, values), np.float64).reshape(-1)
    if not src.scale and not src.offset:
        return raw
    out = raw.copy()
    for what, vals in (("scale", src.scale), ("offset", src.offset)):
        if vals and len(vals) not in (1, raw.size):
            raise ValueError(f"{what} has {len(vals)} values for {raw.size} elements")
    if src.scale:
        out = out * np.asarray(src.scale, np.float64)
    if src.offset:
        out = out + np.asarray(src.offset, np.float64)
    return out


def _raw(src: ObsSource, s: Sample, values: dict[str, np.ndarray] | None) -> np.ndarray:
    v = s.values if values is None else values
    if src.source == "ee_pose":
        if src.field == "position_xy":
            return np.asarray(v["position"])[:2]
        return np.asarray(v[src.field])
    if src.source in ("joint_states", "gripper"):
        arr = np.asarray(v["position" if src.field == "width" else src.field])
        if src.joints:
            idx = [s.names.index(j) for j in src.joints]  # ValueError -> missing joint
            arr = arr[idx]
        return np.array([arr.sum()]) if src.field == "width" else arr
    if src.source == "part_poses":
        if src.field == "pose":
            return np.concatenate([v["position"][src.index], v["quat_xyzw"][src.index]])
        return np.asarray(v[src.field][src.index])
    # task_state: names "<key>/<i>"
    key = (src.key or src.name) + "/"
    vals = np.asarray(v["position"])
    idx = [i for i, n in enumerate(s.names) if n.startswith(key)]
    if not idx:
        raise KeyError(f"task_state has no entries '{key}*'")
    return vals[idx]


@dataclass
class ObsResult:
    """The outcome of assembling one observation history."""

    ok: bool
    obs: np.ndarray | None = None  # [To, Do]
    images: dict[str, np.ndarray] = field(default_factory=dict)  # camera -> [To, 3, H, W]
    obs_time_s: float = 0.0  # grid time of the newest step
    reason: str = ""
    ages_s: dict[str, float] = field(default_factory=dict)  # input -> age of its sample at obs_time


def resize_nearest(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 [3, H, W] -> [3, height, width] by nearest neighbour (no-op when sizes match)."""
    if img.shape[1] == height and img.shape[2] == width:
        return img
    ys = (np.arange(height) * img.shape[1] / height).astype(int)
    xs = (np.arange(width) * img.shape[2] / width).astype(int)
    return img[:, ys][:, :, xs]


class ObsHistoryBuilder:
    """Buffers of every input and the assembly of [To, Do] histories on the control grid."""

    def __init__(
        self,
        obs: list[ObsSource],
        slice_sizes: list[int],
        cond_steps: int,
        control_hz: float,
        cameras: dict[str, tuple[int, int]] | None = None,
        max_age_s: dict[str, float] | None = None,
        default_max_age_s: float = 0.25,
        obs_min: np.ndarray | None = None,
        obs_max: np.ndarray | None = None,
        range_margin: float = 1.0,
        range_min_span: float = 0.0,
        input_latency_s: float = 0.0,
    ) -> None:
        if len(obs) != len(slice_sizes):
            raise ValueError(f"{len(obs)} obs sources for {len(slice_sizes)} slices")
        self.obs = obs
        self.sizes = slice_sizes
        self.cond_steps = cond_steps
        self.dt = 1.0 / control_hz
        self.cameras = dict(cameras or {})
        self.max_age_s = dict(max_age_s or {})
        self.default_max_age_s = default_max_age_s
        channels = {o.source for o in obs} | {f"image:{c}" for c in self.cameras}
        # Each buffer spans the history (To - 1 periods), the channel's staleness limit, the input
        # latency a tick waits for, and one more period for a late tick.
        self.buffers: dict[str, SampleBuffer] = {
            c: SampleBuffer(self.window_s(c, input_latency_s)) for c in sorted(channels)
        }
        self.lo = self.hi = None
        if obs_min is not None and obs_max is not None:
            span = np.asarray(obs_max, np.float64) - np.asarray(obs_min, np.float64)
            span = np.maximum(span, range_min_span)
            self.lo = np.asarray(obs_min) - range_margin * span
            self.hi = np.asarray(obs_max) + range_margin * span

    def window_s(self, channel: str, input_latency_s: float = 0.0) -> float:
        """Seconds of samples a channel keeps: (To - 1) / control_hz + staleness limit + latency + 1 / control_hz."""
        return (self.cond_steps - 1) * self.dt + self.limit(channel) + input_latency_s + self.dt

    def add(self, channel: str, sample: Sample) -> None:
        buf = self.buffers.get(channel)
        if buf is not None:  # inputs the bundle does not read are ignored
            buf.add(sample)

    def complete(self, t: float) -> bool:
        """Every input has a sample stamped at or after t (so nothing stamped <= t is still on its way)."""
        return all(b.newest is not None and b.newest.stamp_s >= t - TIME_EPS_S for b in self.buffers.values())

    def limit(self, channel: str) -> float:
        key = channel.split(":", 1)[1] if channel.startswith("image:") else channel
        return self.max_age_s.get(channel, self.max_age_s.get(key, self.default_max_age_s))

    def ages(self, now_s: float) -> dict[str, float]:
        return {c: (now_s - b.newest.stamp_s) if b.newest else float("inf") for c, b in self.buffers.items()}

    def _at(self, channel: str, t: float) -> tuple[Sample, dict[str, np.ndarray]] | str:
        before, after = self.buffers[channel].around(t)
        if before is None:
            return f"no '{channel}' sample at or before t={t:.3f}"
        age = t - before.stamp_s
        if age > self.limit(channel):
            return f"'{channel}' is stale: newest sample {age:.3f} s old at t={t:.3f} (limit {self.limit(channel)} s)"
        if channel in INTERPOLATED and after is not None and age > 0:
            return before, _interp_values(before, after, t)
        return before, before.values

    def assemble(self, now_s: float) -> ObsResult:
        """The [To, Do] history ending at now_s, or ok=False with the reason (missing, stale, NaN, range)."""
        To = self.cond_steps
        rows = []
        imgs: dict[str, list[np.ndarray]] = {c: [] for c in self.cameras}
        for j in range(To):
            t = now_s - (To - 1 - j) * self.dt
            cache: dict[str, tuple[Sample, dict] | str] = {}
            parts = []
            for src, size in zip(self.obs, self.sizes):
                got = cache.setdefault(src.source, self._at(src.source, t))
                if isinstance(got, str):
                    return ObsResult(False, obs_time_s=now_s, reason=got, ages_s=self.ages(now_s))
                try:
                    v = np.asarray(extract(src, got[0], got[1]), np.float64).reshape(-1)
                except (KeyError, ValueError, IndexError) as e:
                    return ObsResult(False, obs_time_s=now_s, reason=f"obs slice '{src.name}': {e}")
                if v.size != size:
                    return ObsResult(
                        False,
                        obs_time_s=now_s,
                        reason=f"obs slice '{src.name}' from {src.source}.{src.field} has {v.size} values; "
                        f"the bundle expects {size}",
                    )
                parts.append(v)
            rows.append(np.concatenate(parts))
            for cam, (h, w) in self.cameras.items():
                got = self._at(f"image:{cam}", t)
                if isinstance(got, str):
                    return ObsResult(False, obs_time_s=now_s, reason=got, ages_s=self.ages(now_s))
                imgs[cam].append(resize_nearest(np.asarray(got[1]["image"], np.uint8), h, w))
        obs = np.stack(rows)
        res = ObsResult(True, obs.astype(np.float32), obs_time_s=now_s, ages_s=self.ages(now_s))
        res.images = {c: np.stack(v) for c, v in imgs.items()}
        bad = self.check(obs)
        if bad:
            res.ok, res.reason = False, bad
        return res

    def slice_of(self, dim: int) -> str:
        start = 0
        for src, size in zip(self.obs, self.sizes):
            if start <= dim < start + size:
                return src.name
            start += size
        return "?"

    def check(self, obs: np.ndarray) -> str:
        """'' when every value is finite and within the widened normalisation range, else why not."""
        finite = np.isfinite(obs)
        if not finite.all():
            step, dim = (int(x) for x in np.argwhere(~finite)[0])
            return f"non-finite observation at history step {step}, dim {dim} (slice '{self.slice_of(dim)}')"
        if self.lo is not None:
            out = (obs < self.lo) | (obs > self.hi)
            if out.any():
                step, dim = (int(x) for x in np.argwhere(out)[0])
                return (
                    f"observation out of range at history step {step}, dim {dim} (slice '{self.slice_of(dim)}'): "
                    f"{obs[step, dim]:.4g} not in [{self.lo[dim]:.4g}, {self.hi[dim]:.4g}]"
                )
        return ""

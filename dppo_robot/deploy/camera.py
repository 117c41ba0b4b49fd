"""RealSense colour capture over pyrealsense2 (a device by serial, or a recording played back).

`RealSenseCapture.read()` -> `Frame` (stamp in seconds on the host clock when the device
provides global time, else the frame's own timestamp; rgb uint8 [H, W, 3]; intrinsics).
`synthesize_recording` writes a recording from numpy frames through rs.software_device, so
playback is tested with no camera attached. pyrealsense2's errors (an unreadable or truncated
recording, a recording without a colour stream, a device that is not connected) become a
one-line CameraError naming the camera and the file or serial.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dppo_robot.deploy.config import CameraConfig


class CameraError(ValueError):
    """A camera or recording that cannot be opened or read; the message names the camera and the source."""


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


@dataclass
class Intrinsics:
    width: int
    height: int
    fx: float
    fy: float
    ppx: float
    ppy: float
    model: str = "plumb_bob"
    coeffs: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)

    def k(self) -> list[float]:
        return [self.fx, 0.0, self.ppx, 0.0, self.fy, self.ppy, 0.0, 0.0, 1.0]


@dataclass
class Frame:
    stamp_s: float
    rgb: np.ndarray  # [H, W, 3] uint8
    number: int
    intrinsics: Intrinsics


class RealSenseCapture:
    """A colour stream from a RealSense device (cfg.serial) or a recording (cfg.recording)."""

    def __init__(self, cfg: CameraConfig) -> None:
        import pyrealsense2 as rs

        self.rs = rs
        self.cfg = cfg
        if cfg.recording and not Path(cfg.recording).is_file():
            raise FileNotFoundError(f"camera '{cfg.name}': recording {cfg.recording} not found")
        self.source = f"recording {cfg.recording}" if cfg.recording else f"device {cfg.serial or '(first found)'}"
        try:
            self._open(rs, cfg)
        except RuntimeError as e:  # pyrealsense2 raises RuntimeError (and subclasses) for all of these
            raise CameraError(f"camera '{cfg.name}': cannot open {self.source}: {_first_line(e)}") from None

    def _open(self, rs, cfg: CameraConfig) -> None:
        self.pipeline = rs.pipeline()
        conf = rs.config()
        if cfg.recording:
            conf.enable_device_from_file(cfg.recording, repeat_playback=False)
            conf.enable_stream(rs.stream.color)
        else:
            if cfg.serial:
                conf.enable_device(cfg.serial)
            conf.enable_stream(rs.stream.color, cfg.width, cfg.height, rs.format.rgb8, cfg.fps)
        profile = self.pipeline.start(conf)
        dev = profile.get_device()
        if cfg.recording:
            dev.as_playback().set_real_time(False)
        else:
            for s in dev.query_sensors():
                if s.supports(rs.option.global_time_enabled):
                    s.set_option(rs.option.global_time_enabled, 1)
        vp = profile.get_stream(rs.stream.color).as_video_stream_profile()
        i = vp.get_intrinsics()
        self.intrinsics = Intrinsics(i.width, i.height, i.fx, i.fy, i.ppx, i.ppy, coeffs=tuple(i.coeffs))
        self.format = vp.format()

    def read(self, timeout_ms: int = 2000) -> Frame | None:
        """The next colour frame, or None at the end of a recording / on timeout."""
        try:
            ok, frames = self.pipeline.try_wait_for_frames(timeout_ms)
        except RuntimeError as e:
            raise CameraError(f"camera '{self.cfg.name}': cannot read {self.source}: {_first_line(e)}") from None
        if not ok:
            return None
        f = frames.get_color_frame()
        if not f:
            return None
        img = np.asanyarray(f.get_data()).copy()
        if self.format == self.rs.format.bgr8:
            img = img[:, :, ::-1].copy()
        return Frame(f.get_timestamp() * 1e-3, img, int(f.get_frame_number()), self.intrinsics)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.pipeline.stop()


def synthesize_recording(path: str | Path, frames: list[np.ndarray], fps: int = 30, t0_ms: float = 1000.0) -> Path:
    """Write rgb8 frames [H, W, 3] as a RealSense recording via rs.software_device + rs.recorder."""
    import pyrealsense2 as rs

    h, w = frames[0].shape[:2]
    dev = rs.software_device()
    sensor = dev.add_sensor("Color")
    vs = rs.video_stream()
    vs.type, vs.index, vs.uid = rs.stream.color, 0, 0
    vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = w, h, fps, 3, rs.format.rgb8
    intr = rs.intrinsics()
    intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy = w, h, float(w), float(w), w / 2, h / 2
    intr.model = rs.distortion.none
    vs.intrinsics = intr
    profile = sensor.add_video_stream(vs)
    path = Path(path)
    rec = rs.recorder(str(path), dev)
    sensor.open(profile)
    q = rs.frame_queue(len(frames) + 1)
    sensor.start(q)
    keep = []
    for n, img in enumerate(frames):
        data = np.ascontiguousarray(img, np.uint8)
        keep.append(data)
        f = rs.software_video_frame()
        f.pixels, f.stride, f.bpp = data, w * 3, 3
        f.timestamp, f.domain, f.frame_number = t0_ms + n * 1000.0 / fps, rs.timestamp_domain.hardware_clock, n
        f.profile = profile.as_video_stream_profile()
        sensor.on_video_frame(f)
        q.wait_for_frame(1000)
        time.sleep(0.01)  # the recorder writes asynchronously
    sensor.stop()
    sensor.close()
    del rec
    return path

"""What a policy reads and writes: named observation and action slices, cameras, rate.

The same names appear in task definitions, checkpoints, bundle manifests and the ROS 2
policy node's topic mapping, so the deployment side can map every slice to a topic.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Slice:
    """A named contiguous block of the observation or action vector."""

    name: str
    size: int
    units: str = ""  # e.g. "m", "rad", "m/s", "6d", "normalized"
    frame: str = ""  # e.g. "base", "base_tag", "ee"
    description: str = ""

    def validate(self) -> None:
        if not self.name:
            raise ValueError("slice name must not be empty")
        if self.size < 1:
            raise ValueError(f"slice '{self.name}' has size {self.size}; must be >= 1")


@dataclass
class CameraSpec:
    """One camera input: uint8 RGB images [To, 3, height, width]."""

    name: str
    height: int = 96
    width: int = 96

    def validate(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"camera name {self.name!r} must be an identifier (it names an ONNX input)")
        if self.height < 8 or self.width < 8:
            raise ValueError(f"camera '{self.name}' size {self.height}x{self.width} is too small")


@dataclass
class IOSpec:
    """Observation slices (concatenated in order to Do), action slices (Da), cameras, rate."""

    obs: list[Slice]
    action: list[Slice]
    control_hz: float
    cameras: list[CameraSpec] = field(default_factory=list)

    def validate(self) -> None:
        for kind, slices in (("obs", self.obs), ("action", self.action)):
            if not slices:
                raise ValueError(f"{kind} spec has no slices")
            names = [s.name for s in slices]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"{kind} spec names repeat: {dup}")
        if self.control_hz <= 0:
            raise ValueError(f"control_hz must be > 0, got {self.control_hz}")

    @property
    def obs_dim(self) -> int:
        return sum(s.size for s in self.obs)

    @property
    def action_dim(self) -> int:
        return sum(s.size for s in self.action)

    @staticmethod
    def offsets(slices: list[Slice]) -> dict[str, tuple[int, int]]:
        """name -> (start, stop) into the flat vector."""
        out, start = {}, 0
        for s in slices:
            out[s.name] = (start, start + s.size)
            start += s.size
        return out

    @classmethod
    def generic(cls, obs_dim: int, action_dim: int, control_hz: float) -> IOSpec:
        """A spec with one anonymous slice each, for policies whose layout is unknown."""
        return cls([Slice("obs", obs_dim)], [Slice("action", action_dim)], control_hz)

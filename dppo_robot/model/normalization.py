"""Min/max normalisation of observations and actions to [-1, 1].

obs_n = 2 * (obs - obs_min) / (obs_max - obs_min + obs_eps) - 1, then clipped to
+-obs_clip when set. This covers both reference conventions:
robomimic (obs_eps = 1e-6, no clip) and furniture's LinearNormalizer (obs_eps = 0, clip 5).
actions = (a_n + 1) / 2 * (action_max - action_min) + action_min.
numpy only (env worker processes import it without torch); the same formulas as torch ops for
exported graphs are in dppo_robot.model.normalization_module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Normalization:
    """Per-dimension statistics: obs_* [Do], action_* [Da], float32."""

    obs_min: np.ndarray
    obs_max: np.ndarray
    action_min: np.ndarray
    action_max: np.ndarray
    obs_eps: float = 0.0
    obs_clip: float | None = None

    def __post_init__(self) -> None:
        for name in ("obs_min", "obs_max", "action_min", "action_max"):
            v = np.asarray(getattr(self, name), dtype=np.float32)
            if v.ndim != 1:
                raise ValueError(f"normalization.{name} must be a vector, got shape {v.shape}")
            if not np.all(np.isfinite(v)):
                raise ValueError(f"normalization.{name} has non-finite values")
            setattr(self, name, v)
        if self.obs_min.shape != self.obs_max.shape:
            raise ValueError(f"normalization obs_min {self.obs_min.shape} and obs_max {self.obs_max.shape} differ")
        if self.action_min.shape != self.action_max.shape:
            raise ValueError(
                f"normalization action_min {self.action_min.shape} and action_max {self.action_max.shape} differ"
            )
        if np.any(self.obs_max - self.obs_min + self.obs_eps <= 0):
            bad = np.nonzero(self.obs_max - self.obs_min + self.obs_eps <= 0)[0].tolist()
            raise ValueError(f"normalization: obs range is empty or inverted at dims {bad}")

    @property
    def obs_dim(self) -> int:
        return int(self.obs_min.shape[0])

    @property
    def action_dim(self) -> int:
        return int(self.action_min.shape[0])

    @classmethod
    def fit(cls, obs: np.ndarray, actions: np.ndarray, obs_clip: float | None = 5.0) -> Normalization:
        """Statistics of a dataset (obs [N, Do], actions [N, Da]); constant columns get +-1 range."""
        o = np.asarray(obs, np.float64).reshape(-1, obs.shape[-1])
        a = np.asarray(actions, np.float64).reshape(-1, actions.shape[-1])

        def rng(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            lo, hi = x.min(0), x.max(0)
            const = hi - lo == 0
            return lo - const, hi + const

        omin, omax = rng(o)
        amin, amax = rng(a)
        return cls(omin, omax, amin, amax, 0.0, obs_clip)

    def normalize_obs(self, obs: np.ndarray) -> np.ndarray:
        """obs [..., Do] in environment units -> [-1, 1] (float32)."""
        o = np.asarray(obs, np.float32)
        n = 2.0 * (o - self.obs_min) / (self.obs_max - self.obs_min + np.float32(self.obs_eps)) - 1.0
        if self.obs_clip is not None:
            n = np.clip(n, -self.obs_clip, self.obs_clip)
        return n.astype(np.float32)

    def normalize_action(self, action: np.ndarray) -> np.ndarray:
        """actions [..., Da] in environment units -> [-1, 1]."""
        a = np.asarray(action, np.float32)
        return (2.0 * (a - self.action_min) / (self.action_max - self.action_min) - 1.0).astype(np.float32)

    def denormalize_action(self, action_n: np.ndarray) -> np.ndarray:
        """actions [..., Da] in [-1, 1] -> environment units."""
        a = np.asarray(action_n, np.float32)
        return ((a + 1.0) / 2.0 * (self.action_max - self.action_min) + self.action_min).astype(np.float32)

    def to_dict(self) -> dict:
        return {
            "obs_min": self.obs_min.tolist(),
            "obs_max": self.obs_max.tolist(),
            "obs_eps": float(self.obs_eps),
            "obs_clip": None if self.obs_clip is None else float(self.obs_clip),
            "action_min": self.action_min.tolist(),
            "action_max": self.action_max.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        known = {"obs_min", "obs_max", "obs_eps", "obs_clip", "action_min", "action_max"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"normalization: unknown fields {sorted(unknown)}")
        missing = {"obs_min", "obs_max", "action_min", "action_max"} - set(d)
        if missing:
            raise ValueError(f"normalization: missing fields {sorted(missing)}")
        return cls(
            np.asarray(d["obs_min"]),
            np.asarray(d["obs_max"]),
            np.asarray(d["action_min"]),
            np.asarray(d["action_max"]),
            float(d.get("obs_eps", 0.0)),
            d.get("obs_clip"),
        )

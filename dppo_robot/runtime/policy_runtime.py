"""Load a policy bundle, verify it, and turn observation histories into action chunks.

Shapes: obs [To, Do] or [B, To, Do] float32 env units; images[camera] [To, 3, H, W] or
[B, To, 3, H, W] uint8; noise [B, S, Tp, Da] (diffusion bundles only; drawn when not given)
-> actions [B, Tp, Da] (or [Tp, Da] for an unbatched call) in environment units.
A gaussian bundle takes no noise: its chunk is the Gaussian mean, a function of obs alone.

Bad input never passes silently: non-finite observations or noise, ragged lists, empty batches
and wrong shapes raise ObservationError; observations outside the manifest's normalisation
range (widened by RuntimeConfig.obs_range_margin) are rejected, clipped or warned about as
RuntimeConfig.obs_range says; and predict never returns a non-finite action: a chain that
produces NaN/inf raises NonFiniteActionError.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort

from dppo_robot.bundle.manifest import BundleManifest, read_manifest
from dppo_robot.checkpoint import file_sha256
from dppo_robot.io_spec import IOSpec
from dppo_robot.runtime.errors import (
    BundleError,
    BundleMismatchError,
    NonFiniteActionError,
    ObservationError,
    ObservationRangeWarning,
)
from dppo_robot.runtime.providers import resolve_providers
from dppo_robot.typed_config import ConfigError


@dataclass
class RuntimeConfig:
    """How to run a bundle."""

    providers: list[str] = field(default_factory=lambda: ["auto"])  # or e.g. ["cuda", "cpu"]
    intra_op_threads: int = 1  # 0 lets onnxruntime pick
    warmup_iters: int = 3
    verify_sha256: bool = True
    # Observation values outside [obs_min - m * span, obs_max + m * span] (the manifest's
    # normalisation range widened by m = obs_range_margin spans per side; span floored at
    # obs_range_min_span env units, as the deploy layer does): "reject" raises ObservationError,
    # "clip" clips them into that window, "warn" passes them on. "clip" and "warn" emit one
    # ObservationRangeWarning per dimension per runtime and count calls in out_of_range_calls.
    # Default "warn": today's callers (sim evaluation, which explores past the demonstrations'
    # range) keep working; a real-time caller (the deploy layer) holds on such values itself.
    obs_range: Literal["reject", "clip", "warn"] = "warn"
    obs_range_margin: float = 1.0  # spans of the range, per side
    obs_range_min_span: float = 0.1  # env units

    def validate(self) -> None:
        if self.intra_op_threads < 0:
            raise ValueError("intra_op_threads must be >= 0")
        if self.warmup_iters < 0:
            raise ValueError("warmup_iters must be >= 0")
        if not (np.isfinite(self.obs_range_margin) and self.obs_range_margin >= 0):
            raise ValueError(f"obs_range_margin must be finite and >= 0, got {self.obs_range_margin}")
        if not (np.isfinite(self.obs_range_min_span) and self.obs_range_min_span >= 0):
            raise ValueError(f"obs_range_min_span must be finite and >= 0, got {self.obs_range_min_span}")


def verify_files(bundle_dir: Path, manifest: BundleManifest) -> None:
    """Every file named in the manifest exists and has its recorded sha256."""
    for name, digest in manifest.files.items():
        path = bundle_dir / name
        if not path.is_file():
            raise BundleError(f"{path}: file listed in {bundle_dir / 'bundle.yaml'} is missing")
        actual = file_sha256(path)
        if actual != digest:
            raise BundleError(
                f"{path}: sha256 {actual[:16]}... does not match bundle.yaml ({digest[:16]}...); "
                "the file was modified or corrupted"
            )


class PolicyRuntime:
    """An onnxruntime session over a verified bundle."""

    def __init__(self, bundle_dir: str | Path, config: RuntimeConfig | None = None) -> None:
        self.bundle_dir = Path(bundle_dir)
        self.config = config or RuntimeConfig()
        self.config.validate()
        try:
            self.manifest = read_manifest(self.bundle_dir)
        except ConfigError as e:
            raise BundleError(str(e)) from None
        if self.config.verify_sha256:
            verify_files(self.bundle_dir, self.manifest)
        m = self.manifest
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.config.intra_op_threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.providers = resolve_providers(self.config.providers)
        onnx_path = self.bundle_dir / m.onnx.file
        try:
            self.session = ort.InferenceSession(str(onnx_path), opts, providers=self.providers)
        except Exception as e:  # onnxruntime raises its own exception types
            raise BundleError(f"{onnx_path}: onnxruntime cannot load the graph: {e}") from None
        self._check_graph_io()
        self.noise_steps = m.sampler.noise_steps if m.sampler is not None else 0  # S; 0: no noise input
        lo, hi = np.asarray(m.normalization.obs_min, np.float64), np.asarray(m.normalization.obs_max, np.float64)
        span = np.maximum(hi - lo, self.config.obs_range_min_span)
        self.obs_lo, self.obs_hi = lo - self.config.obs_range_margin * span, hi + self.config.obs_range_margin * span
        self.out_of_range_calls = 0  # predict calls with an observation outside [obs_lo, obs_hi]
        self._warned_dims: set[int] = set()
        self._rng = np.random.default_rng()
        self.last_latency_s = float("nan")
        for _ in range(self.config.warmup_iters):
            self.predict(np.broadcast_to(self._mid_obs(), (m.cond_steps, m.obs_dim)).copy(), self._blank_images())

    # ----------------------------------------------------------------- checks
    def _check_graph_io(self) -> None:
        m = self.manifest
        got = {i.name: i for i in self.session.get_inputs()}
        want = {t.name: t for t in m.onnx.inputs}
        if set(got) != set(want):
            raise BundleError(
                f"{self.bundle_dir / m.onnx.file}: graph inputs {sorted(got)} differ from bundle.yaml onnx.inputs "
                f"{sorted(want)}"
            )
        dtypes = {"float32": "tensor(float)", "uint8": "tensor(uint8)"}
        for name, spec in want.items():
            if got[name].type != dtypes[spec.dtype]:
                raise BundleError(
                    f"{self.bundle_dir}: graph input '{name}' is {got[name].type}, manifest says {spec.dtype}"
                )
            fixed = [d for d in got[name].shape[1:]]
            if fixed != list(spec.shape[1:]):
                raise BundleError(
                    f"{self.bundle_dir}: graph input '{name}' has shape {got[name].shape}, manifest says {spec.shape}"
                )
        self._expected = {n: (tuple(s.shape[1:]), s.dtype) for n, s in want.items()}

    def check_compatible(
        self,
        obs_names: list[str] | None = None,
        action_names: list[str] | None = None,
        cameras: list[str] | None = None,
        control_hz: float | None = None,
        source: str = "caller",
        cond_steps: int | None = None,
    ) -> None:
        """Raise BundleMismatchError naming both sides when the caller's layout differs from the bundle's."""
        m = self.manifest
        checks = [
            ("observation slices", [s.name for s in m.obs_spec], obs_names),
            ("action slices", [s.name for s in m.action_spec], action_names),
            ("cameras", [c.name for c in m.cameras], cameras),
        ]
        for what, ours, theirs in checks:
            if theirs is not None and list(theirs) != ours:
                missing = [n for n in ours if n not in theirs]
                extra = [n for n in theirs if n not in ours]
                raise BundleMismatchError(
                    f"{what} of bundle '{m.name}' ({self.bundle_dir}) are {ours}; {source} provides {list(theirs)}"
                    + (f"; missing {missing}" if missing else "")
                    + (f"; not in bundle {extra}" if extra else "")
                )
        if cond_steps is not None and cond_steps != m.cond_steps:
            raise BundleMismatchError(
                f"bundle '{m.name}' ({self.bundle_dir}) takes an observation history of To={m.cond_steps} steps; "
                f"{source} provides {cond_steps}"
            )
        if control_hz is not None and abs(control_hz - m.control_hz) > 1e-6:
            raise BundleMismatchError(
                f"bundle '{m.name}' ({self.bundle_dir}) runs at control_hz={m.control_hz}; "
                f"{source} runs at {control_hz}"
            )

    def check_spec(self, spec: IOSpec, source: str, cond_steps: int | None = None) -> None:
        """check_compatible against a whole IO spec (slices, cameras, rate), e.g. a simulated task's."""
        self.check_compatible(
            [s.name for s in spec.obs],
            [s.name for s in spec.action],
            [c.name for c in spec.cameras],
            spec.control_hz,
            source=source,
            cond_steps=cond_steps,
        )

    # ----------------------------------------------------------------- inference
    def _mid_obs(self) -> np.ndarray:
        n = self.manifest.normalization
        return ((np.asarray(n.obs_min) + np.asarray(n.obs_max)) / 2).astype(np.float32)

    def _blank_images(self) -> dict[str, np.ndarray]:
        m = self.manifest
        return {c.name: np.zeros((m.cond_steps, 3, c.height, c.width), np.uint8) for c in m.cameras}

    def _as_batch(self, name: str, value: np.ndarray, batched: bool | None) -> tuple[np.ndarray, bool]:
        shape, dtype = self._expected[name]
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as e:
            raise ObservationError(
                f"input '{name}' is not an array of one shape (a ragged list?): {str(e).splitlines()[0]}"
            ) from None
        if arr.dtype != np.dtype(dtype):
            if dtype == "float32" and arr.dtype.kind == "f":
                arr = arr.astype(np.float32)
            else:
                raise ObservationError(
                    f"input '{name}' has dtype {arr.dtype}; bundle '{self.manifest.name}' expects {dtype}"
                )
        if arr.shape == shape:
            arr, is_batched = arr[None], False
        elif arr.ndim == len(shape) + 1 and arr.shape[1:] == shape:
            is_batched = True
        else:
            raise ObservationError(
                f"input '{name}' has shape {arr.shape}; bundle '{self.manifest.name}' expects {list(shape)} "
                f"or [B, {', '.join(map(str, shape))}]"
            )
        if batched is not None and is_batched != batched:
            raise ObservationError(f"input '{name}' is {'' if is_batched else 'un'}batched unlike 'obs'")
        if arr.shape[0] == 0:
            raise ObservationError(f"input '{name}' has an empty batch (shape {arr.shape}); give at least one row")
        return np.ascontiguousarray(arr), is_batched

    def _slice_of(self, dim: int) -> str:
        names = [s.name for s in self.manifest.obs_spec if s.start <= dim < s.start + s.size]
        return f", slice {names[0]!r}" if names else ""

    def _check_range(self, obs_b: np.ndarray) -> np.ndarray:
        """Apply RuntimeConfig.obs_range to obs [B, To, Do] outside [obs_lo, obs_hi]."""
        out = (obs_b < self.obs_lo) | (obs_b > self.obs_hi)
        if not out.any():
            return obs_b
        m, policy = self.manifest, self.config.obs_range
        idx = np.argwhere(out)[0]
        dim = int(idx[-1])
        value = float(obs_b[tuple(idx)])
        what = (
            f"observation dim {dim}{self._slice_of(dim)} = {value:.6g} (history step {int(idx[-2])}) is outside "
            f"[{self.obs_lo[dim]:.6g}, {self.obs_hi[dim]:.6g}] (bundle '{m.name}' normalisation range "
            f"+- {self.config.obs_range_margin:g} spans)"
        )
        if policy == "reject":
            raise ObservationError(f"{what}; refused (RuntimeConfig.obs_range = 'reject')")
        self.out_of_range_calls += 1
        dims = sorted(set(np.nonzero(out.any(axis=(0, 1)))[0].tolist()) - self._warned_dims)
        if dims:
            self._warned_dims.update(dims)
            action = "clipped into it" if policy == "clip" else "passed on unchanged"
            warnings.warn(
                f"{what}; {action} (RuntimeConfig.obs_range = {policy!r}); new dims out of range: {dims}",
                ObservationRangeWarning,
                stacklevel=3,
            )
        if policy == "clip":
            obs_b = np.clip(obs_b, self.obs_lo, self.obs_hi).astype(np.float32)
        return obs_b

    def predict(
        self,
        obs: np.ndarray,
        images: dict[str, np.ndarray] | None = None,
        noise: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
    ) -> np.ndarray:
        """One chain (diffusion) or mean (gaussian): obs history (+ images) -> action chunk, env units.

        rng draws the noise of a diffusion bundle when none is given; a gaussian bundle ignores it.
        """
        m = self.manifest
        obs_b, batched = self._as_batch("obs", obs, None)
        bad = ~np.isfinite(obs_b)
        if bad.any():
            idx = np.argwhere(bad)[0]
            dim = int(idx[-1])
            names = [s.name for s in m.obs_spec if s.start <= dim < s.start + s.size]
            raise ObservationError(
                f"observation has non-finite values (first at history step {int(idx[-2])}, dim {dim}"
                f"{', slice ' + repr(names[0]) if names else ''}); bundle '{m.name}' refuses to act on it"
            )
        obs_b = self._check_range(obs_b)
        b = obs_b.shape[0]
        feeds = {"obs": obs_b}
        images = images or {}
        want_cams = [c.name for c in m.cameras]
        if sorted(images) != sorted(want_cams):
            raise ObservationError(f"bundle '{m.name}' needs images from cameras {want_cams}; got {sorted(images)}")
        for cam, img in images.items():
            arr, _ = self._as_batch(f"image_{cam}", img, batched)
            if arr.shape[0] != b:
                raise ObservationError(f"image '{cam}' has batch {arr.shape[0]}, obs has {b}")
            feeds[f"image_{cam}"] = arr
        if not self.noise_steps:
            if noise is not None:
                raise ObservationError(
                    f"bundle '{m.name}' is a {m.policy_kind} policy with a deterministic action; it takes no noise"
                )
        elif noise is None:
            gen = rng or self._rng
            shape = (b, self.noise_steps, m.horizon_steps, m.action_dim)
            feeds["noise"] = gen.standard_normal(shape, dtype=np.float32)
        else:
            noise, _ = self._as_batch("noise", noise, True)
            if noise.shape[0] != b:
                raise ObservationError(f"noise has batch {noise.shape[0]}, obs has {b}")
            if not np.all(np.isfinite(noise)):
                raise ObservationError(f"noise has non-finite values; bundle '{m.name}' refuses to act on it")
            feeds["noise"] = noise
        t0 = time.perf_counter()
        (actions,) = self.session.run(["actions"], feeds)
        self.last_latency_s = time.perf_counter() - t0
        if not np.all(np.isfinite(actions)):
            rows = sorted(set(np.nonzero(~np.isfinite(actions))[0].tolist()))
            raise NonFiniteActionError(
                f"bundle '{m.name}' produced non-finite actions (batch rows {rows[:8]}) from finite inputs; "
                f"observations this far outside the normalisation range overflow inside the graph "
                f"({self.out_of_range_calls} out-of-range calls so far; obs_range 'reject' refuses them)"
            )
        return actions if batched else actions[0]

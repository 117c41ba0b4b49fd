"""bundle.yaml: the self-describing manifest of a policy bundle.

Records shapes, named obs/action slices with units and frames, rates, the sampler, the
normalisation folded into the graph, the sha256 of every other file, and provenance.
Loaded strictly: unknown fields or inconsistent shapes are errors naming the file and field.

Every field is checked for its unit and range (control_hz finite > 0 Hz, 1 <= act_steps <=
horizon_steps, normalisation ranges finite with min < max, sampler steps inside the schedule,
...); file names are relative paths confined to the bundle directory; YAML aliases are refused
(an alias bomb would expand in memory before any check ran). The manifest carries `digest`,
sha256 over its own content (every field but `digest`, canonical JSON), which includes the
sha256 of every file in `files`: any edit of bundle.yaml after export (a normalisation range, a
rate, a file hash) is refused on load. A manifest without a digest (written before it existed)
is refused too, with the fix: `dppo-robot bundle seal DIR` checks the files and writes it.

Policy kinds: "diffusion" bundles hold the unrolled sampling chain, take a `noise` input and
describe it in `sampler`; "gaussian" bundles (the Gaussian MLP baseline) hold the Gaussian
mean, a deterministic function of the observation, take no `noise` input and have
`sampler: null`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml

import dppo_robot
from dppo_robot.io_spec import CameraSpec, IOSpec, Slice
from dppo_robot.model.normalization import Normalization
from dppo_robot.typed_config import ConfigError, from_dict, safe_load_yaml, to_dict

SCHEMA_VERSION = 1
MANIFEST_NAME = "bundle.yaml"
ONNX_NAME = "policy.onnx"
GAUSSIAN_NETWORK = "gaussian_mlp"  # the `denoiser` (network) field of gaussian bundles

PolicyKind = Literal["diffusion", "gaussian"]
DIGEST_PREFIX = "sha256:"
MAX_CONTROL_HZ = 10_000.0  # a policy rate above this is a typo (units: Hz, not ms)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _finite(x: float) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def confined_name(name: str, what: str) -> None:
    """A file name of the bundle: relative, no '..', no backslash (stays inside the bundle directory)."""
    p = PurePosixPath(name)
    if not name or p.is_absolute() or ".." in p.parts or "\\" in name or ":" in p.parts[0] or name.startswith("~"):
        raise ValueError(f"{what} {name!r} must be a relative path inside the bundle directory")


@dataclass
class ManifestSlice:
    name: str
    start: int
    size: int
    units: str = ""
    frame: str = ""
    description: str = ""

    def validate(self) -> None:
        if not self.name:
            raise ValueError("slice name must not be empty")
        if self.start < 0 or self.size < 1:
            raise ValueError(f"slice '{self.name}': start must be >= 0 and size >= 1, got {self.start}, {self.size}")


@dataclass
class SamplerSpec:
    """How the chain inside the graph samples; noise_steps is S of the noise input [B, S, Tp, Da]."""

    type: Literal["ddim", "ddpm"]
    denoising_steps: int  # K of the training schedule
    timesteps: list[int]  # t of each sampling step, in order
    networks: list[str]  # "actor" or "actor_ft" per sampling step
    noise_steps: int  # 1 (x_T only) for DDIM eta=0; 1 + K for DDPM
    eta: float = 0.0
    ddim_steps: int | None = None
    ft_denoising_steps: int = 0
    randn_clip_value: float = 10.0
    denoised_clip_value: float | None = 1.0
    final_action_clip_value: float | None = None
    ddpm_min_std: float = 1e-3

    def validate(self) -> None:
        k = self.denoising_steps
        if k < 1:
            raise ValueError(f"denoising_steps must be >= 1, got {k}")
        if not self.timesteps or any(not 0 <= t < k for t in self.timesteps):
            raise ValueError(f"timesteps must be a non-empty list of steps in [0, {k}), got {self.timesteps}")
        if any(n not in ("actor", "actor_ft") for n in self.networks):
            raise ValueError(f"networks must each be 'actor' or 'actor_ft', got {sorted(set(self.networks))}")
        if self.noise_steps < 1:
            raise ValueError(f"noise_steps must be >= 1, got {self.noise_steps}")
        if self.ddim_steps is not None and not 1 <= self.ddim_steps <= k:
            raise ValueError(f"ddim_steps must be in [1, denoising_steps={k}], got {self.ddim_steps}")
        if not 0 <= self.ft_denoising_steps <= k:
            raise ValueError(f"ft_denoising_steps must be in [0, denoising_steps={k}], got {self.ft_denoising_steps}")
        if not (_finite(self.eta) and self.eta >= 0):
            raise ValueError(f"eta must be finite and >= 0, got {self.eta}")
        if not (_finite(self.ddpm_min_std) and self.ddpm_min_std >= 0):
            raise ValueError(f"ddpm_min_std must be finite and >= 0, got {self.ddpm_min_std}")
        for name in ("randn_clip_value", "denoised_clip_value", "final_action_clip_value"):
            v = getattr(self, name)
            if v is not None and not (_finite(v) and v > 0):
                raise ValueError(f"{name} must be finite and > 0 (normalised action units), got {v}")


@dataclass
class NormalizationSpec:
    obs_min: list[float]
    obs_max: list[float]
    action_min: list[float]
    action_max: list[float]
    obs_eps: float = 0.0
    obs_clip: float | None = None

    def validate(self) -> None:
        for name in ("obs_min", "obs_max", "action_min", "action_max"):
            bad = [i for i, v in enumerate(getattr(self, name)) if not _finite(v)]
            if bad:
                raise ValueError(f"{name} has non-finite values at dims {bad[:8]}")
        if not (_finite(self.obs_eps) and self.obs_eps >= 0):
            raise ValueError(f"obs_eps must be finite and >= 0, got {self.obs_eps}")
        if self.obs_clip is not None and not (_finite(self.obs_clip) and self.obs_clip > 0):
            raise ValueError(f"obs_clip must be null or finite and > 0 (normalised units), got {self.obs_clip}")
        for kind, lo, hi in (("obs", self.obs_min, self.obs_max), ("action", self.action_min, self.action_max)):
            eps = self.obs_eps if kind == "obs" else 0.0
            bad = [i for i, (a, b) in enumerate(zip(lo, hi)) if not b - a + eps > 0]
            if bad:
                raise ValueError(f"{kind}_min must be < {kind}_max: empty or inverted range at dims {bad[:8]}")

    def to_normalization(self) -> Normalization:
        return Normalization.from_dict(to_dict(self))


@dataclass
class TensorSpec:
    name: str
    dtype: Literal["float32", "uint8"]
    shape: list[Any]  # ints, or "B" for the dynamic batch

    def validate(self) -> None:
        if not self.shape or self.shape[0] != "B":
            raise ValueError(f"tensor '{self.name}': shape must start with the batch 'B', got {self.shape}")
        if any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in self.shape[1:]):
            raise ValueError(f"tensor '{self.name}': dims after 'B' must be integers >= 1, got {self.shape}")


@dataclass
class OnnxSpec:
    file: str
    opset: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def validate(self) -> None:
        confined_name(self.file, "file")
        if self.opset < 1:
            raise ValueError(f"opset must be >= 1, got {self.opset}")


@dataclass
class Provenance:
    source: str  # path of the checkpoint it came from, or "fresh"
    source_format: str  # "dppo_robot" or "dppo_reference"
    source_sha256: str | None
    training_config: dict[str, Any] = field(default_factory=dict)
    code_version: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    verification: dict[str, Any] = field(default_factory=dict)
    created_utc: str = ""
    notes: list[str] = field(default_factory=list)  # warnings from import/export (e.g. generic IO spec)


@dataclass
class BundleManifest:
    schema_version: int
    name: str
    policy_kind: PolicyKind
    denoiser: str  # the network: mlp, unet1d or vit_mlp (diffusion); gaussian_mlp (gaussian)
    obs_dim: int  # Do
    action_dim: int  # Da
    cond_steps: int  # To
    horizon_steps: int  # Tp
    act_steps: int  # Ta
    control_hz: float
    obs_spec: list[ManifestSlice]
    action_spec: list[ManifestSlice]
    cameras: list[CameraSpec]
    sampler: SamplerSpec | None  # required for diffusion; null for gaussian (no sampling in the graph)
    normalization: NormalizationSpec
    onnx: OnnxSpec
    files: dict[str, str]  # file name -> sha256, every file of the bundle but bundle.yaml
    provenance: Provenance
    digest: str = ""  # "sha256:<hex>" of every other field (canonical JSON); "" = unsealed (refused on load)

    def validate(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise ValueError(f"schema_version {self.schema_version} is not supported (expected {SCHEMA_VERSION})")
        if not self.name:
            raise ValueError("name must not be empty")
        for what, v in (("obs_dim", self.obs_dim), ("action_dim", self.action_dim)):
            if v < 1:
                raise ValueError(f"{what} must be >= 1, got {v}")
        for what, v in (("cond_steps", self.cond_steps), ("horizon_steps", self.horizon_steps)):
            if v < 1:
                raise ValueError(f"{what} must be >= 1 (steps), got {v}")
        if not 1 <= self.act_steps <= self.horizon_steps:
            raise ValueError(
                f"act_steps must be in [1, horizon_steps={self.horizon_steps}] (steps), got {self.act_steps}"
            )
        if not (_finite(self.control_hz) and 0 < self.control_hz <= MAX_CONTROL_HZ):
            raise ValueError(f"control_hz must be finite, > 0 and <= {MAX_CONTROL_HZ:g} (Hz), got {self.control_hz}")
        for what, names in (
            ("obs_spec", [s.name for s in self.obs_spec]),
            ("action_spec", [s.name for s in self.action_spec]),
            ("cameras", [c.name for c in self.cameras]),
        ):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"{what}: names {dup} appear more than once")
        for name, digest in self.files.items():
            confined_name(name, "files:")
            if not isinstance(digest, str) or not _SHA256.match(digest):
                raise ValueError(f"files: '{name}' needs a sha256 (64 lowercase hex digits), got {digest!r}")
        if self.digest and not re.fullmatch(DIGEST_PREFIX + "[0-9a-f]{64}", self.digest):
            raise ValueError(f"digest must be '{DIGEST_PREFIX}<64 hex digits>', got {self.digest!r}")
        for kind, slices, dim in (
            ("obs_spec", self.obs_spec, self.obs_dim),
            ("action_spec", self.action_spec, self.action_dim),
        ):
            start = 0
            for s in slices:
                if s.start != start:
                    raise ValueError(f"{kind} slice '{s.name}' starts at {s.start}, expected {start}")
                start += s.size
            if start != dim:
                raise ValueError(f"{kind} slices cover {start} dims but the policy has {dim}")
        n = self.normalization
        if len(n.obs_min) != self.obs_dim or len(n.obs_max) != self.obs_dim:
            raise ValueError(f"normalization obs_min/obs_max must have obs_dim={self.obs_dim} values")
        if len(n.action_min) != self.action_dim or len(n.action_max) != self.action_dim:
            raise ValueError(f"normalization action_min/action_max must have action_dim={self.action_dim} values")
        if self.act_steps > self.horizon_steps:
            raise ValueError(f"act_steps {self.act_steps} > horizon_steps {self.horizon_steps}")
        if self.onnx.file not in self.files:
            raise ValueError(f"files has no sha256 for the ONNX graph '{self.onnx.file}'")
        self._validate_tensors()
        self._validate_kind()

    def _validate_tensors(self) -> None:
        """The graph's declared inputs and outputs agree with the shapes above."""
        ins = {t.name: t for t in self.onnx.inputs}
        outs = {t.name: t for t in self.onnx.outputs}
        if len(ins) != len(self.onnx.inputs) or len(outs) != len(self.onnx.outputs):
            raise ValueError("onnx.inputs / onnx.outputs: tensor names appear more than once")
        want = {"obs": ["B", self.cond_steps, self.obs_dim]}
        if self.sampler is not None:
            want["noise"] = ["B", self.sampler.noise_steps, self.horizon_steps, self.action_dim]
        for c in self.cameras:
            want[f"image_{c.name}"] = ["B", self.cond_steps, 3, c.height, c.width]
        for name, shape in want.items():
            if name in ins and ins[name].shape != shape:
                raise ValueError(f"onnx.inputs: '{name}' has shape {ins[name].shape}, expected {shape}")
        if "obs" not in ins:
            raise ValueError("onnx.inputs: needs an 'obs' input [B, To, Do]")
        extra = sorted(set(ins) - set(want) - {"noise"})
        if extra:
            raise ValueError(f"onnx.inputs: {extra} are not inputs of this bundle (obs, noise, image_<camera>)")
        missing = sorted(n for n in want if n.startswith("image_") and n not in ins)
        if missing:
            raise ValueError(f"onnx.inputs: missing camera inputs {missing}")
        act = ["B", self.horizon_steps, self.action_dim]
        if "actions" not in outs or outs["actions"].shape != act:
            raise ValueError(f"onnx.outputs: needs 'actions' with shape {act}")

    def _validate_kind(self) -> None:
        """The sampler block and the noise input agree with policy_kind."""
        has_noise = any(t.name == "noise" for t in self.onnx.inputs)
        if self.policy_kind == "diffusion":
            if self.sampler is None:
                raise ValueError("sampler: a diffusion bundle needs a sampler block (got null)")
            if len(self.sampler.timesteps) != len(self.sampler.networks):
                raise ValueError("sampler.timesteps and sampler.networks differ in length")
            if not has_noise:
                raise ValueError("onnx.inputs: a diffusion bundle needs a 'noise' input [B, S, Tp, Da]")
        else:
            if self.sampler is not None:
                raise ValueError(
                    f"sampler: a gaussian bundle has no sampler (its graph computes the Gaussian mean); "
                    f"got a {self.sampler.type!r} sampler, expected null"
                )
            if has_noise:
                raise ValueError("onnx.inputs: a gaussian bundle takes no 'noise' input (its action is deterministic)")

    # ------------------------------------------------------------------ views
    def io_spec(self) -> IOSpec:
        def sl(v: list[ManifestSlice]) -> list[Slice]:
            return [Slice(s.name, s.size, s.units, s.frame, s.description) for s in v]

        return IOSpec(sl(self.obs_spec), sl(self.action_spec), self.control_hz, list(self.cameras))

    def input_shape(self, name: str) -> list[Any]:
        for t in self.onnx.inputs:
            if t.name == name:
                return t.shape
        raise KeyError(name)


def manifest_slices(slices: list[Slice]) -> list[ManifestSlice]:
    out, start = [], 0
    for s in slices:
        out.append(ManifestSlice(s.name, start, s.size, s.units, s.frame, s.description))
        start += s.size
    return out


def code_version() -> dict[str, Any]:
    """Package version and, when run from a git checkout, the commit and whether it was dirty."""
    info: dict[str, Any] = {"package": "dppo-robot", "version": dppo_robot.__version__}
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        info["git_commit"] = commit
        info["git_dirty"] = bool(dirty)
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def manifest_digest(manifest: BundleManifest) -> str:
    """sha256 over every field but `digest` (canonical JSON; `files` holds every file's sha256)."""
    content = to_dict(manifest)
    content.pop("digest", None)
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return DIGEST_PREFIX + hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _dump(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120)


def write_manifest(manifest: BundleManifest, bundle_dir: Path) -> Path:
    """Write bundle.yaml with its digest (computed over the content as it reads back from YAML)."""
    path = bundle_dir / MANIFEST_NAME
    data = to_dict(manifest)
    data.pop("digest", None)
    reread = from_dict(BundleManifest, yaml.safe_load(_dump(data)), str(path))
    manifest.digest = data["digest"] = manifest_digest(reread)
    text = "# dppo_robot policy bundle manifest (schema 1). Edit nothing: files are hashed.\n" + _dump(data)
    path.write_text(text)
    return path


def _parse_manifest(bundle_dir: Path) -> tuple[Path, BundleManifest]:
    path = bundle_dir / MANIFEST_NAME
    if not bundle_dir.is_dir():
        raise ConfigError(f"{bundle_dir}: policy bundle directory not found")
    if not path.is_file():
        raise ConfigError(f"{path}: bundle manifest not found (is {bundle_dir} a policy bundle?)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the bundle manifest ({e})") from None
    m = from_dict(BundleManifest, safe_load_yaml(text, str(path)), str(path))
    root = bundle_dir.resolve()
    for name in [m.onnx.file, *m.files]:
        if not (bundle_dir / name).resolve().is_relative_to(root):
            raise ConfigError(f"{path}: file '{name}' resolves outside the bundle directory {bundle_dir}")
    return path, m


def read_manifest(bundle_dir: str | Path) -> BundleManifest:
    """Load and validate bundle_dir/bundle.yaml and check its digest; errors name the file and field."""
    path, m = _parse_manifest(Path(bundle_dir))
    if not m.digest:
        raise ConfigError(
            f"{path}: field 'digest' is missing: the manifest is not sealed (written before bundle digests); "
            f"check the bundle, then run `dppo-robot bundle seal {bundle_dir}`"
        )
    actual = manifest_digest(m)
    if actual != m.digest:
        raise ConfigError(
            f"{path}: field 'digest' {m.digest[:23]}... does not match the manifest's content ({actual[:23]}...): "
            "bundle.yaml was edited after export; re-export the policy (or re-seal after review)"
        )
    return m


def seal_manifest(bundle_dir: str | Path) -> BundleManifest:
    """Check every listed file against its sha256, then (re)write bundle.yaml with its digest."""
    from dppo_robot.runtime.policy_runtime import verify_files

    bundle_dir = Path(bundle_dir)
    _, m = _parse_manifest(bundle_dir)
    verify_files(bundle_dir, m)
    write_manifest(m, bundle_dir)
    return m

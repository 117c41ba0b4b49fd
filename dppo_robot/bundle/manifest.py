"""bundle.yaml: the self-describing manifest of a policy bundle.

Records shapes, named obs/action slices with units and frames, rates, the sampler, the
normalisation folded into the graph, the sha256 of every other file, and provenance.
Loaded strictly: unknown fields or inconsistent shapes are errors naming the file and field.

Policy kinds: "diffusion" bundles hold the unrolled sampling chain, take a `noise` input and
describe it in `sampler`; "gaussian" bundles (the Gaussian MLP baseline) hold the Gaussian
mean, a deterministic function of the observation, take no `noise` input and have
`sampler: null`.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

import dppo_robot
from dppo_robot.io_spec import CameraSpec, IOSpec, Slice
from dppo_robot.model.normalization import Normalization
from dppo_robot.typed_config import ConfigError, from_dict, to_dict

SCHEMA_VERSION = 1
MANIFEST_NAME = "bundle.yaml"
ONNX_NAME = "policy.onnx"
GAUSSIAN_NETWORK = "gaussian_mlp"  # the `denoiser` (network) field of gaussian bundles

PolicyKind = Literal["diffusion", "gaussian"]


@dataclass
class ManifestSlice:
    name: str
    start: int
    size: int
    units: str = ""
    frame: str = ""
    description: str = ""


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


@dataclass
class NormalizationSpec:
    obs_min: list[float]
    obs_max: list[float]
    action_min: list[float]
    action_max: list[float]
    obs_eps: float = 0.0
    obs_clip: float | None = None

    def to_normalization(self) -> Normalization:
        return Normalization.from_dict(to_dict(self))


@dataclass
class TensorSpec:
    name: str
    dtype: Literal["float32", "uint8"]
    shape: list[Any]  # ints, or "B" for the dynamic batch


@dataclass
class OnnxSpec:
    file: str
    opset: int
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


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

    def validate(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise ValueError(f"schema_version {self.schema_version} is not supported (expected {SCHEMA_VERSION})")
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
        self._validate_kind()

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


def write_manifest(manifest: BundleManifest, bundle_dir: Path) -> Path:
    path = bundle_dir / MANIFEST_NAME
    text = "# dppo_robot policy bundle manifest (schema 1). Edit nothing: files are hashed.\n"
    text += yaml.safe_dump(to_dict(manifest), sort_keys=False, default_flow_style=None, width=120)
    path.write_text(text)
    return path


def read_manifest(bundle_dir: str | Path) -> BundleManifest:
    """Load and validate bundle_dir/bundle.yaml; errors name the file and field."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST_NAME
    if not bundle_dir.is_dir():
        raise ConfigError(f"{bundle_dir}: policy bundle directory not found")
    if not path.is_file():
        raise ConfigError(f"{path}: bundle manifest not found (is {bundle_dir} a policy bundle?)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from None
    return from_dict(BundleManifest, data, str(path))

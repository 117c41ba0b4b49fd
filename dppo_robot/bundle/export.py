"""Write policy bundles: export the graph to ONNX, verify it against torch, hash, describe.

Diffusion policies export their whole sampling chain (onnx_chain), Gaussian MLP policies their
mean (onnx_gaussian).

A bundle is written into a temporary sibling directory and renamed into place only after
verification passed, so a failed export never leaves a half-written bundle.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from dppo_robot.bundle.manifest import (
    GAUSSIAN_NETWORK,
    ONNX_NAME,
    SCHEMA_VERSION,
    BundleManifest,
    NormalizationSpec,
    OnnxSpec,
    Provenance,
    SamplerSpec,
    TensorSpec,
    code_version,
    manifest_slices,
    utc_now,
    write_manifest,
)
from dppo_robot.bundle.onnx_chain import export_chain_onnx, verify_against_torch
from dppo_robot.bundle.onnx_gaussian import export_gaussian_onnx, verify_gaussian_against_torch
from dppo_robot.bundle.onnx_graph import OPSET, Feeds
from dppo_robot.checkpoint import PolicyCheckpoint, load_checkpoint
from dppo_robot.io_spec import IOSpec
from dppo_robot.model.diffusion import DiffusionPolicy
from dppo_robot.model.env_units import noise_steps
from dppo_robot.model.gaussian_mlp import GaussianMLP
from dppo_robot.model.normalization import Normalization
from dppo_robot.model.policy_config import PolicyConfig
from dppo_robot.model.policy_factory import build_policy

ExportablePolicy = DiffusionPolicy | GaussianMLP
SessionRun = Callable[[Feeds], np.ndarray]  # graph feeds -> actions [B, Tp, Da]


class ExportError(ValueError):
    """A policy that cannot be exported as asked; the message says why."""


def sampler_spec(policy: DiffusionPolicy) -> SamplerSpec:
    return SamplerSpec(
        type="ddim" if policy.use_ddim else "ddpm",
        denoising_steps=policy.schedule.num_steps,
        timesteps=policy.schedule.timesteps(),
        networks=["actor_ft" if policy.network_for(i) is policy.actor_ft else "actor" for i in range(policy.n_steps)],
        noise_steps=noise_steps(policy),
        eta=0.0,
        ddim_steps=policy.schedule.ddim_steps,
        ft_denoising_steps=policy.ft_denoising_steps,
        randn_clip_value=float(policy.randn_clip_value),
        denoised_clip_value=policy.denoised_clip_value,
        final_action_clip_value=policy.final_action_clip_value,
    )


def _check_dims(cfg: PolicyConfig, spec: IOSpec, norm: Normalization) -> None:
    pairs = [
        ("obs spec", spec.obs_dim, "policy obs_dim", cfg.obs_dim),
        ("action spec", spec.action_dim, "policy action_dim", cfg.action_dim),
        ("normalization obs", norm.obs_dim, "policy obs_dim", cfg.obs_dim),
        ("normalization action", norm.action_dim, "policy action_dim", cfg.action_dim),
    ]
    for a, va, b, vb in pairs:
        if va != vb:
            raise ExportError(f"{a} has {va} dims but {b} is {vb}")


@dataclass
class _Graph:
    """An exported policy graph with what its manifest needs to say about it."""

    data: bytes  # the ONNX model
    verify: Callable[[SessionRun, float], dict]  # (session_run, tolerance) -> verification record
    compared_with: str
    network: str  # the manifest's `denoiser` field
    sampler: SamplerSpec | None
    noise: list[TensorSpec]  # the noise input, diffusion only


def _export_graph(policy: ExportablePolicy, cfg: PolicyConfig, spec: IOSpec, norm: Normalization, path: Path) -> _Graph:
    """Trace the graph of cfg.kind to path (ONNX)."""
    to = cfg.cond_steps
    if cfg.kind == "diffusion":
        if not isinstance(policy, DiffusionPolicy):
            raise ExportError(f"policy config kind 'diffusion' but the policy is a {type(policy).__name__}")
        s = noise_steps(policy)
        return _Graph(
            export_chain_onnx(policy, norm, spec, to, path),
            lambda run, tol: verify_against_torch(run, policy, norm, spec, to, tolerance=tol),
            "torch DiffusionPolicy.sample (eval mode), same x_T and noise",
            cfg.denoiser.kind,
            sampler_spec(policy),
            [TensorSpec("noise", "float32", ["B", s, cfg.horizon_steps, cfg.action_dim])],
        )
    if not isinstance(policy, GaussianMLP):
        raise ExportError(f"policy config kind 'gaussian' but the policy is a {type(policy).__name__}")
    if spec.cameras:
        raise ExportError(
            f"a Gaussian MLP policy reads no images, but its IO spec has cameras {[c.name for c in spec.cameras]}; "
            "export it with a state-only spec"
        )
    return _Graph(
        export_gaussian_onnx(policy, norm, to, path),
        lambda run, tol: verify_gaussian_against_torch(run, policy, norm, to, tolerance=tol),
        "torch GaussianMLP mean (eval mode; the std is not part of the deployed action), same obs",
        GAUSSIAN_NETWORK,
        None,
        [],
    )


def write_bundle(
    policy: ExportablePolicy,
    cfg: PolicyConfig,
    spec: IOSpec,
    norm: Normalization,
    out_dir: str | Path,
    name: str,
    provenance: Provenance,
    tolerance: float = 1e-4,
    overwrite: bool = False,
) -> BundleManifest:
    """Export, verify (batch 1 and 8) and write a bundle directory; returns its manifest.

    A diffusion policy exports its sampling chain, a Gaussian one (cfg.kind "gaussian") its mean.
    """
    _check_dims(cfg, spec, norm)
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise ExportError(f"{out_dir}: already exists (pass overwrite / --force to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        graph = _export_graph(policy.eval(), cfg, spec, norm, tmp / ONNX_NAME)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(graph.data, opts, providers=["CPUExecutionProvider"])
        provenance.verification = graph.verify(lambda feeds: sess.run(["actions"], feeds)[0], tolerance)
        provenance.verification["compared_with"] = graph.compared_with
        provenance.code_version = provenance.code_version or code_version()
        provenance.created_utc = provenance.created_utc or utc_now()
        to, tp, da = cfg.cond_steps, cfg.horizon_steps, cfg.action_dim
        inputs = [
            TensorSpec("obs", "float32", ["B", to, cfg.obs_dim]),
            *graph.noise,
            *[TensorSpec(f"image_{c.name}", "uint8", ["B", to, 3, c.height, c.width]) for c in spec.cameras],
        ]
        manifest = BundleManifest(
            schema_version=SCHEMA_VERSION,
            name=name,
            policy_kind=cfg.kind,
            denoiser=graph.network,
            obs_dim=cfg.obs_dim,
            action_dim=cfg.action_dim,
            cond_steps=to,
            horizon_steps=tp,
            act_steps=cfg.act_steps,
            control_hz=spec.control_hz,
            obs_spec=manifest_slices(spec.obs),
            action_spec=manifest_slices(spec.action),
            cameras=list(spec.cameras),
            sampler=graph.sampler,
            normalization=NormalizationSpec(**norm.to_dict()),
            onnx=OnnxSpec(ONNX_NAME, OPSET, inputs, [TensorSpec("actions", "float32", ["B", tp, da])]),
            files={ONNX_NAME: hashlib.sha256(graph.data).hexdigest()},
            provenance=provenance,
        )
        manifest.validate()
        write_manifest(manifest, tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def policy_from_checkpoint(ckpt: PolicyCheckpoint, use_ema: bool = True) -> ExportablePolicy:
    """Rebuild the policy of a project checkpoint, diffusion or Gaussian (EMA weights when present and asked)."""
    policy = build_policy(ckpt.policy_config, ckpt.io_spec)
    weights = ckpt.ema if use_ema and ckpt.ema is not None else ckpt.model
    missing, unexpected = policy.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ExportError(
            f"{ckpt.path}: weights do not match the policy config (missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    return policy.eval()


def export_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    name: str | None = None,
    use_ema: bool = True,
    tolerance: float = 1e-4,
    overwrite: bool = False,
) -> BundleManifest:
    """`dppo-robot export`: a project checkpoint -> a verified bundle."""
    ckpt = load_checkpoint(checkpoint)
    policy = policy_from_checkpoint(ckpt, use_ema)
    prov = Provenance(
        source=str(ckpt.path),
        source_format="dppo_robot",
        source_sha256=ckpt.sha256,
        training_config=ckpt.train_config,
        metrics=ckpt.metrics,
    )
    return write_bundle(
        policy,
        ckpt.policy_config,
        ckpt.io_spec,
        ckpt.normalization,
        out_dir,
        name or Path(out_dir).name,
        prov,
        tolerance,
        overwrite,
    )


# ------------------------------------------------------------------ command line
def add_arguments(parser) -> None:
    """`dppo-robot export CHECKPOINT --out DIR`."""
    parser.add_argument("checkpoint", help="dppo_robot checkpoint (.pt) written by pre-training or fine-tuning")
    parser.add_argument("--out", required=True, help="bundle directory to write (e.g. policies/lift_dppo)")
    parser.add_argument("--name", help="bundle name (default: the directory name)")
    parser.add_argument("--no-ema", action="store_true", help="export the raw weights even when EMA weights exist")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="max |ONNX - torch| in env units (default 1e-4)")
    parser.add_argument("--force", action="store_true", help="replace an existing bundle directory")


def run(args) -> int:
    m = export_checkpoint(args.checkpoint, args.out, args.name, not args.no_ema, args.tolerance, args.force)
    diffs = m.provenance.verification.get("max_abs_diff", {})
    print(f"wrote bundle '{m.name}' to {args.out}")
    if m.sampler is not None:
        print(f"  sampler {m.sampler.type} K={m.sampler.denoising_steps} steps={m.sampler.timesteps}")
    else:
        print(f"  {m.policy_kind} policy: the graph outputs its mean (deterministic, no noise input)")
    print(f"  verified ONNX vs torch: max |diff| {diffs} (env units)")
    return 0

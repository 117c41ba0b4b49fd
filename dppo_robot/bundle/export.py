"""Write policy bundles: export the chain to ONNX, verify it against torch, hash, describe.

A bundle is written into a temporary sibling directory and renamed into place only after
verification passed, so a failed export never leaves a half-written bundle.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import onnxruntime as ort

from dppo_robot.bundle.manifest import (
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
from dppo_robot.bundle.onnx_chain import OPSET, export_chain_onnx, verify_against_torch
from dppo_robot.checkpoint import PolicyCheckpoint, load_checkpoint
from dppo_robot.io_spec import IOSpec
from dppo_robot.model.diffusion import DiffusionPolicy
from dppo_robot.model.env_units import noise_steps
from dppo_robot.model.normalization import Normalization
from dppo_robot.model.policy_config import PolicyConfig
from dppo_robot.model.policy_factory import build_diffusion_policy


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


def write_bundle(
    policy: DiffusionPolicy,
    cfg: PolicyConfig,
    spec: IOSpec,
    norm: Normalization,
    out_dir: str | Path,
    name: str,
    provenance: Provenance,
    tolerance: float = 1e-4,
    overwrite: bool = False,
) -> BundleManifest:
    """Export, verify (batch 1 and 8) and write a bundle directory; returns its manifest."""
    _check_dims(cfg, spec, norm)
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise ExportError(f"{out_dir}: already exists (pass overwrite / --force to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        policy = policy.eval()
        data = export_chain_onnx(policy, norm, spec, cfg.cond_steps, tmp / ONNX_NAME)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        provenance.verification = verify_against_torch(
            lambda feeds: sess.run(["actions"], feeds)[0], policy, norm, spec, cfg.cond_steps, tolerance=tolerance
        )
        provenance.verification["compared_with"] = "torch DiffusionPolicy.sample (eval mode), same x_T and noise"
        provenance.code_version = provenance.code_version or code_version()
        provenance.created_utc = provenance.created_utc or utc_now()
        to, tp, da = cfg.cond_steps, cfg.horizon_steps, cfg.action_dim
        inputs = [
            TensorSpec("obs", "float32", ["B", to, cfg.obs_dim]),
            TensorSpec("noise", "float32", ["B", noise_steps(policy), tp, da]),
            *[TensorSpec(f"image_{c.name}", "uint8", ["B", to, 3, c.height, c.width]) for c in spec.cameras],
        ]
        manifest = BundleManifest(
            schema_version=SCHEMA_VERSION,
            name=name,
            policy_kind="diffusion",
            denoiser=cfg.denoiser.kind,
            obs_dim=cfg.obs_dim,
            action_dim=cfg.action_dim,
            cond_steps=to,
            horizon_steps=tp,
            act_steps=cfg.act_steps,
            control_hz=spec.control_hz,
            obs_spec=manifest_slices(spec.obs),
            action_spec=manifest_slices(spec.action),
            cameras=list(spec.cameras),
            sampler=sampler_spec(policy),
            normalization=NormalizationSpec(**norm.to_dict()),
            onnx=OnnxSpec(ONNX_NAME, OPSET, inputs, [TensorSpec("actions", "float32", ["B", tp, da])]),
            files={ONNX_NAME: hashlib.sha256(data).hexdigest()},
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


def policy_from_checkpoint(ckpt: PolicyCheckpoint, use_ema: bool = True) -> DiffusionPolicy:
    """Rebuild the diffusion policy of a project checkpoint (EMA weights when present and asked)."""
    if ckpt.policy_config.kind != "diffusion":
        raise ExportError(f"{ckpt.path}: policy kind {ckpt.policy_config.kind!r} cannot be exported as a chain bundle")
    policy = build_diffusion_policy(ckpt.policy_config, ckpt.io_spec)
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
    print(f"  sampler {m.sampler.type} K={m.sampler.denoising_steps} steps={m.sampler.timesteps}")
    print(f"  verified ONNX vs torch: max |diff| {diffs} (env units)")
    return 0

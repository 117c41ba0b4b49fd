"""`dppo-robot bundle info DIR`: what a bundle holds, and whether its files are intact."""

from __future__ import annotations

import argparse
from pathlib import Path

from dppo_robot.bundle.manifest import BundleManifest, read_manifest
from dppo_robot.runtime.errors import BundleError
from dppo_robot.typed_config import ConfigError


def describe(m: BundleManifest) -> list[str]:
    """Human-readable summary lines of a manifest."""
    s = m.sampler
    if s is None:
        head = f"policy {m.policy_kind}, network {m.denoiser}"
        sampler = f"none: the graph outputs the {m.policy_kind} mean (deterministic, no noise input)"
    else:
        head = f"denoiser {m.denoiser}"
        sampler = f"{s.type} K={s.denoising_steps} t={s.timesteps} noise input S={s.noise_steps}"
    lines = [
        f"bundle      {m.name} (schema {m.schema_version}, {head})",
        f"shapes      To={m.cond_steps} Tp={m.horizon_steps} Ta={m.act_steps} Do={m.obs_dim} Da={m.action_dim}",
        f"rate        {m.control_hz:g} Hz; one chunk covers {m.act_steps / m.control_hz:.3f} s of execution",
        f"sampler     {sampler}",
        "obs         " + ", ".join(f"{x.name}[{x.size}]{'(' + x.units + ')' if x.units else ''}" for x in m.obs_spec),
        "action      "
        + ", ".join(f"{x.name}[{x.size}]{'(' + x.units + ')' if x.units else ''}" for x in m.action_spec),
    ]
    if m.cameras:
        lines.append("cameras     " + ", ".join(f"{c.name} {c.height}x{c.width}" for c in m.cameras))
    p = m.provenance
    lines.append(f"source      {p.source_format}: {p.source} (sha256 {str(p.source_sha256)[:12]}...)")
    if p.code_version:
        lines.append(f"code        {p.code_version}")
    if p.verification:
        lines.append(f"verified    {p.verification.get('max_abs_diff')} max |ONNX - torch| (env units)")
    if p.metrics:
        lines.append(f"metrics     {p.metrics}")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="policy bundle directory")


def run(args: argparse.Namespace) -> int:
    from dppo_robot.runtime.policy_runtime import verify_files

    path = Path(args.bundle)
    try:
        m = read_manifest(path)
    except ConfigError as e:
        raise BundleError(str(e)) from None
    print("\n".join(describe(m)))
    verify_files(path, m)
    print(f"files       {len(m.files)} verified (sha256)")
    return 0

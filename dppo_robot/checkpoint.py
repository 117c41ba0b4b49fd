"""The project's policy checkpoint: weights plus everything needed to rebuild and export them.

A checkpoint is a torch file holding a dict:
    format: "dppo_robot.checkpoint", version: 1
    policy_config: PolicyConfig as data    io_spec: IOSpec as data
    normalization: Normalization as data   model: state dict of the policy module
    ema: optional EMA state dict           critic: optional critic state dict
    train_config: the resolved config of the job that wrote it
    metrics: dict                          step: int
Writes are atomic (temporary file, fsync, rename) so a crash never leaves a torn checkpoint.

A checkpoint of the wrong kind (a fine-tune checkpoint where a pre-training run resumes, another
policy config, weights that do not fit the module) is a one-line CheckpointError naming the
file: `load_checkpoint(path, job=..., policy_config=...)` checks what the caller expects, and
`load_weights` wraps `load_state_dict`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dppo_robot.io_spec import IOSpec
from dppo_robot.model.normalization import Normalization
from dppo_robot.model.policy_config import PolicyConfig
from dppo_robot.typed_config import ConfigError, from_dict, to_dict

FORMAT = "dppo_robot.checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the problem."""


@dataclass
class PolicyCheckpoint:
    policy_config: PolicyConfig
    io_spec: IOSpec
    normalization: Normalization
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None = None
    critic: dict[str, torch.Tensor] | None = None
    train_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    step: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    sha256: str | None = None


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file, fsync, then rename over path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(ckpt: PolicyCheckpoint, path: str | Path) -> None:
    """Write ckpt atomically."""
    atomic_torch_save(
        {
            "format": FORMAT,
            "version": VERSION,
            "policy_config": to_dict(ckpt.policy_config),
            "io_spec": to_dict(ckpt.io_spec),
            "normalization": ckpt.normalization.to_dict(),
            "model": ckpt.model,
            "ema": ckpt.ema,
            "critic": ckpt.critic,
            "train_config": ckpt.train_config,
            "metrics": ckpt.metrics,
            "step": ckpt.step,
            "extra": ckpt.extra,
        },
        path,
    )


def _config_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            out += _config_diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix[:-1]}: {a!r} vs {b!r}"]


def load_weights(module: torch.nn.Module, state: Any, path: str | Path, what: str = "model") -> None:
    """module.load_state_dict(state) (strict); a mismatch is a one-line CheckpointError naming file and field."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: field '{what}' is not a state dict (got {type(state).__name__})")
    try:
        module.load_state_dict(state)
    except RuntimeError as e:
        ours = set(module.state_dict())
        missing, unexpected = sorted(ours - set(state)), sorted(set(state) - ours)
        detail = (
            f"missing {missing[:4]}, unexpected {unexpected[:4]}" if missing or unexpected else "tensor shapes differ"
        )
        first = str(e).strip().splitlines()
        shape = next((ln.strip() for ln in first if "size mismatch" in ln), "")
        raise CheckpointError(
            f"{path}: field '{what}' does not fit this {type(module).__name__} ({detail}"
            + (f"; {shape}" if shape and not (missing or unexpected) else "")
            + "): a checkpoint of another kind or policy config"
        ) from None


def load_checkpoint(
    path: str | Path, job: str | None = None, policy_config: PolicyConfig | None = None
) -> PolicyCheckpoint:
    """Read and validate a project checkpoint; errors name the file and the field.

    job ("pretrain", "finetune"): the job that must have written it (its train_config.job).
    policy_config: the policy config it must hold (a resume refuses another architecture).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for corrupt files
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        keys = sorted(raw)[:8] if isinstance(raw, dict) else type(raw).__name__
        hint = " (a reference DPPO checkpoint? use `dppo-robot import-dppo`)" if isinstance(raw, dict) else ""
        raise CheckpointError(f"{path}: not a dppo_robot checkpoint (format field missing; keys {keys}){hint}")
    if raw.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {raw.get('version')} is not supported (expected {VERSION})")
    for key in ("policy_config", "io_spec", "normalization", "model"):
        if key not in raw:
            raise CheckpointError(f"{path}: missing field '{key}'")
    try:
        cfg = from_dict(PolicyConfig, raw["policy_config"], f"{path}", "policy_config")
        spec = from_dict(IOSpec, raw["io_spec"], f"{path}", "io_spec")
        norm = Normalization.from_dict(raw["normalization"])
    except (ConfigError, ValueError) as e:
        raise CheckpointError(f"{path}: {e}") from None
    for key in ("model", "ema", "critic"):
        v = raw.get(key)
        if v is not None and not isinstance(v, dict):
            raise CheckpointError(f"{path}: field '{key}' is not a state dict (got {type(v).__name__})")
    train_config = raw.get("train_config") or {}
    if job is not None:
        written_by = train_config.get("job") if isinstance(train_config, dict) else None
        if written_by != job:
            raise CheckpointError(
                f"{path}: written by a {written_by or 'unknown'!r} job, expected a {job!r} checkpoint "
                "(a checkpoint of another kind in this run directory; use a new run_dir)"
            )
    if policy_config is not None:
        diff = _config_diff(to_dict(cfg), to_dict(policy_config))
        if diff:
            raise CheckpointError(
                f"{path}: its policy_config differs from the expected one ({'; '.join(diff[:3])}"
                + (f"; {len(diff) - 3} more" if len(diff) > 3 else "")
                + ")"
            )
    return PolicyCheckpoint(
        policy_config=cfg,
        io_spec=spec,
        normalization=norm,
        model=raw["model"],
        ema=raw.get("ema"),
        critic=raw.get("critic"),
        train_config=train_config,
        metrics=raw.get("metrics") or {},
        step=int(raw.get("step", 0)),
        extra=raw.get("extra") or {},
        path=path,
        sha256=file_sha256(path),
    )

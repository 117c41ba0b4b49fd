"""Divergence stops a training job: a non-finite loss or weight is an error, never a checkpoint."""

from __future__ import annotations

import math
from pathlib import Path

import torch


class TrainingDivergedError(RuntimeError):
    """Training produced non-finite values (the run's last good checkpoint is kept)."""


def check_loss(value: float, what: str, step: int, run_dir: str | Path) -> None:
    """Raise when a logged loss is NaN or infinite."""
    if not math.isfinite(value):
        raise TrainingDivergedError(
            f"{run_dir}: {what} is {value} at step {step}: training diverged (lower the learning rate); "
            "the last checkpoint written before it is kept"
        )


def check_weights(modules: dict[str, torch.nn.Module], step: int, run_dir: str | Path) -> None:
    """Raise when any parameter of the named modules is NaN or infinite (called before a checkpoint)."""
    for name, module in modules.items():
        for pname, p in module.named_parameters():
            if not bool(torch.isfinite(p).all()):
                raise TrainingDivergedError(
                    f"{run_dir}: {name}.{pname} has non-finite values at step {step}: training diverged "
                    "(lower the learning rate); no checkpoint was written from it"
                )

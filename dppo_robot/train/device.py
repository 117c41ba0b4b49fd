"""Where training updates run: `device: auto | cpu | cuda` of the pre-training and fine-tuning jobs.

Environments always step on the CPU; the networks, the rollout buffer and the updates live on
the chosen device. Observations move to the device once per chunk step and actions come back
once (see finetune.py). Checkpoints are always read with map_location="cpu", so a run on a GPU
resumes, evaluates and exports on a CPU-only machine.
"""

from __future__ import annotations

from typing import Literal

import torch

DeviceName = Literal["auto", "cpu", "cuda"]


def check_device(name: str) -> None:
    """Raise ValueError (one line, naming the field) for a device this machine cannot serve."""
    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device: {name!r} is not one of auto, cpu, cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda requested but torch.cuda.is_available() is False (CPU-only torch or no GPU)")


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when torch.cuda.is_available() else cpu; cpu / cuda as given (checked)."""
    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (cpu for a module with neither)."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")

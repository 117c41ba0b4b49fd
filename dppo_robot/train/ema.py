"""Exponential moving average of model weights (BC pre-training keeps EMA 0.995 as the reference)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """ema = decay * ema + (1 - decay) * weights, after a warm-up of `start_step` plain copies."""

    def __init__(self, model: nn.Module, decay: float = 0.995, start_step: int = 0) -> None:
        self.decay = decay
        self.start_step = start_step
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.step = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.step += 1
        if self.step <= self.start_step:
            self.model.load_state_dict(model.state_dict())
            return
        for e, p in zip(self.model.state_dict().values(), model.state_dict().values()):
            if e.dtype.is_floating_point:
                e.mul_(self.decay).add_(p.detach(), alpha=1 - self.decay)
            else:
                e.copy_(p)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "start_step": self.start_step, "step": self.step, "model": self.model.state_dict()}

    def load_state_dict(self, d: dict) -> None:
        self.decay, self.start_step, self.step = d["decay"], d["start_step"], d["step"]
        self.model.load_state_dict(d["model"])

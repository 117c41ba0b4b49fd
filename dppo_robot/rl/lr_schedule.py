"""Cosine learning-rate schedule with linear warm-up and warm restarts, stepped once per iteration.

Behaviour of the reference's CosineAnnealingWarmupRestarts (irom-princeton/dppo util/scheduler.py)
with cycle_mult = 1 and gamma = 1, the only values its configs use:
- on construction the learning rate is set to min_lr (whatever warmup_steps is);
- after s steps into a cycle: s < warmup_steps: min + (max - min) * s / warmup_steps; otherwise
  min + (max - min) * (1 + cos(pi * (s - warmup) / (first_cycle_steps - warmup))) / 2;
- at s = first_cycle_steps the cycle restarts at s = 0.
The robomimic DPPO configs set min_lr = max_lr (a constant rate); furniture decays 1e-5 -> 1e-6 over
10000 iterations.
"""

from __future__ import annotations

import math

import torch


class CosineWarmupSchedule:
    """Sets every param group's lr of `optimizer`; call step() once per training iteration."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, first_cycle_steps: int, max_lr: float, min_lr: float, warmup_steps: int
    ) -> None:
        if not 0 <= warmup_steps < first_cycle_steps:
            raise ValueError(f"need 0 <= warmup_steps ({warmup_steps}) < first_cycle_steps ({first_cycle_steps})")
        self.optimizer = optimizer
        self.first_cycle_steps = first_cycle_steps
        self.max_lr = max_lr
        self.min_lr = min_lr
        self.warmup_steps = warmup_steps
        self.step_in_cycle = 0
        self.cycle = 0
        self._set(min_lr)

    def lr_at(self, step_in_cycle: int) -> float:
        lo, hi, w = self.min_lr, self.max_lr, self.warmup_steps
        if step_in_cycle < w:
            return (hi - lo) * step_in_cycle / w + lo
        frac = (step_in_cycle - w) / (self.first_cycle_steps - w)
        return lo + (hi - lo) * (1 + math.cos(math.pi * frac)) / 2

    def step(self) -> None:
        self.step_in_cycle += 1
        if self.step_in_cycle >= self.first_cycle_steps:
            self.cycle += 1
            self.step_in_cycle -= self.first_cycle_steps
        self._set(self.lr_at(self.step_in_cycle))

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def _set(self, lr: float) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = lr

    def state_dict(self) -> dict:
        return {"step_in_cycle": self.step_in_cycle, "cycle": self.cycle, "lr": self.get_last_lr()}

    def load_state_dict(self, state: dict) -> None:
        self.step_in_cycle = int(state["step_in_cycle"])
        self.cycle = int(state["cycle"])
        for g, lr in zip(self.optimizer.param_groups, state["lr"]):
            g["lr"] = lr

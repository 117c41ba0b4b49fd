"""When the actor starts moving: a critic warm-up that ends on a count, or on the critic's fit.

The reference trains only the critic for n_critic_warmup_itr iterations (2 robomimic, 1
furniture), then updates both. With a fresh critic and a sparse reward one or two iterations
can leave the value function worse than a constant (explained variance < 0), and the first actor
updates then follow noise. This gate keeps the reference's count as the minimum and, when
`ev_threshold` is set, also waits until the critic's explained variance on the iteration's data
(1 - Var(returns - values) / Var(returns), the values the critic gave *before* this iteration's
update, so the test is out of sample) reaches the threshold, for at most `max_itr` iterations in
all (after which the actor starts anyway, and the metrics say so). Once started, the actor never
stops again. With ev_threshold None the gate is exactly the reference's count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def explained_variance(values: np.ndarray, returns: np.ndarray) -> float:
    """1 - Var(returns - values) / Var(returns); NaN when the returns do not vary."""
    y_pred = np.asarray(values, np.float64).ravel()
    y_true = np.asarray(returns, np.float64).ravel()
    var_y = float(np.var(y_true))
    return float("nan") if var_y == 0 else float(1.0 - np.var(y_true - y_pred) / var_y)


@dataclass
class CriticWarmup:
    """Decides, once per iteration, whether the actor is updated (see the module docstring)."""

    min_itr: int  # the reference's n_critic_warmup_itr: critic-only iterations at least
    ev_threshold: float | None = None  # also wait for explained variance >= this (None: count only)
    max_itr: int | None = None  # critic-only iterations at most when waiting on the threshold
    started_itr: int | None = None  # first iteration with actor updates (None: not yet)
    reason: str = ""  # why the actor started: "count", "explained_variance" or "max_itr"

    def __post_init__(self) -> None:
        if self.min_itr < 0:
            raise ValueError("critic warm-up: n_critic_warmup_itr must be >= 0")
        if self.ev_threshold is not None and not (math.isfinite(self.ev_threshold) and self.ev_threshold < 1):
            raise ValueError(
                f"critic warm-up: critic_warmup_ev_threshold must be finite and < 1, got {self.ev_threshold}"
            )
        if self.max_itr is not None and self.max_itr < self.min_itr:
            raise ValueError(
                f"critic warm-up: max_critic_warmup_itr {self.max_itr} must be >= n_critic_warmup_itr {self.min_itr}"
            )

    def actor_active(self, itr: int, ev: float) -> bool:
        """Whether iteration itr (0-based) updates the actor, given the critic's explained variance on its data."""
        if self.started_itr is not None:
            return itr >= self.started_itr
        if itr < self.min_itr:
            return False
        if self.ev_threshold is None:
            reason = "count"
        elif math.isfinite(ev) and ev >= self.ev_threshold:
            reason = "explained_variance"
        elif self.max_itr is not None and itr >= self.max_itr:
            reason = "max_itr"
        else:
            return False
        self.started_itr, self.reason = itr, reason
        return True

    def state_dict(self) -> dict:
        return {"started_itr": self.started_itr, "reason": self.reason}

    def load_state_dict(self, state: dict) -> None:
        self.started_itr, self.reason = state["started_itr"], state["reason"]

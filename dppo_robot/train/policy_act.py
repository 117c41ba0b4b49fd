"""Turn a torch policy into the act(obs) -> action chunks function collectors are driven with.

Observations and actions are in the policy's normalised units (the collector's envs normalise);
obs [N, To, Do] (or a dict with images) -> chunks [N, Tp, Da] as numpy float32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from dppo_robot.model.diffusion import DiffusionPolicy
from dppo_robot.train.rollout import policy_obs


def to_cond(obs: Any) -> dict:
    """Collector observation -> torch cond dict (images stay uint8)."""
    c = policy_obs(obs)
    out: dict = {"state": torch.as_tensor(np.asarray(c["state"], np.float32))}
    if "images" in c:
        out["images"] = {k: torch.as_tensor(np.ascontiguousarray(v)) for k, v in c["images"].items()}
    return out


def deterministic_act(policy: nn.Module, generator: torch.Generator | None = None) -> Callable[[Any], np.ndarray]:
    """Evaluation sampling: DDIM eta 0 / DDPM with the 1e-3 floor, or the Gaussian mean.

    The chain is deterministic given x_T ~ N(0, I); x_T is drawn from `generator` so an
    evaluation is repeatable and does not consume the global RNG of a training job.
    """

    @torch.no_grad()
    def act(obs: Any) -> np.ndarray:
        cond = to_cond(obs)
        if isinstance(policy, DiffusionPolicy):
            return policy.sample(cond, "eval", generator=generator).actions.numpy()
        return policy(cond)[0].numpy()

    return act

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

from dppo_robot.model.diffusion import DiffusionPolicy, map_cond
from dppo_robot.train.device import module_device
from dppo_robot.train.rollout import policy_obs


def to_cond(obs: Any, device: torch.device | str | None = None) -> dict:
    """Collector observation -> torch cond dict (images stay uint8), moved to device when given."""
    c = policy_obs(obs)
    out: dict = {"state": torch.as_tensor(np.asarray(c["state"], np.float32))}
    if "images" in c:
        out["images"] = {k: torch.as_tensor(np.ascontiguousarray(v)) for k, v in c["images"].items()}
    if device is not None and torch.device(device).type != "cpu":
        out = map_cond(out, lambda v: v.to(device, non_blocking=True))
    return out


def deterministic_act(policy: nn.Module, generator: torch.Generator | None = None) -> Callable[[Any], np.ndarray]:
    """Evaluation sampling: DDIM eta 0 / DDPM with the 1e-3 floor, or the Gaussian mean.

    The chain is deterministic given x_T ~ N(0, I); x_T is drawn from `generator` so an
    evaluation is repeatable and does not consume the global RNG of a training job. A policy on
    a GPU gets its observations moved there and returns its chunks to the CPU.
    """
    device = module_device(policy)

    @torch.no_grad()
    def act(obs: Any) -> np.ndarray:
        cond = to_cond(obs, device)
        if isinstance(policy, DiffusionPolicy):
            return policy.sample(cond, "eval", generator=generator).actions.cpu().numpy()
        return policy(cond)[0].cpu().numpy()

    return act

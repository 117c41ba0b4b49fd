"""Export the deterministic action of a Gaussian MLP policy, its mean, as one ONNX graph.

The graph runs the same GaussianMLP.forward that evaluation of the torch policy runs and keeps
its mean (tanh-squashed when tanh_output; the torch policy clips nothing else), with
normalisation folded in. Input: obs float32 [B, To, Do] (env units); no noise input, the chunk
is a function of the observation alone. Output: actions float32 [B, Tp, Da] (env units).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dppo_robot.bundle.onnx_graph import Feeds, compare_with_torch, example_obs, trace_onnx
from dppo_robot.model.gaussian_mlp import GaussianMLP
from dppo_robot.model.normalization import Normalization
from dppo_robot.model.normalization_module import NormalizationModule


class GaussianMeanGraph(nn.Module):
    """obs [B, To, Do] -> Gaussian mean [B, Tp, Da], both in environment units."""

    def __init__(self, policy: GaussianMLP, norm: Normalization) -> None:
        super().__init__()
        self.policy = policy
        self.norm = NormalizationModule(norm)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        mean, _ = self.policy({"state": self.norm.normalize_obs(obs)})
        return self.norm.denormalize_action(mean)


@torch.no_grad()
def mean_env_units(policy: GaussianMLP, norm: Normalization, obs: np.ndarray) -> np.ndarray:
    """The torch reference: obs [B, To, Do] env units -> mean [B, Tp, Da] env units (policy in eval mode)."""
    mean, _ = policy({"state": torch.from_numpy(norm.normalize_obs(obs))})
    return norm.denormalize_action(mean.numpy())


def example_inputs(norm: Normalization, cond_steps: int, batch: int, seed: int = 0) -> Feeds:
    """Graph feeds {"obs": [B, To, Do]}, env units spread over (and a little past) the data range."""
    return {"obs": example_obs(norm, cond_steps, batch, np.random.default_rng(seed))}


def export_gaussian_onnx(
    policy: GaussianMLP, norm: Normalization, cond_steps: int, path: str | Path | None = None
) -> bytes:
    """Trace the mean graph to ONNX (weights embedded); returns the model bytes, writes path if given."""
    graph = GaussianMeanGraph(policy.eval(), norm)
    return trace_onnx(graph, example_inputs(norm, cond_steps, batch=2), path)


def verify_gaussian_against_torch(
    session_run: Callable[[Feeds], np.ndarray],
    policy: GaussianMLP,
    norm: Normalization,
    cond_steps: int,
    batches: tuple[int, ...] = (1, 8),
    tolerance: float = 1e-4,
) -> dict:
    """Compare the ONNX graph with the torch mean on the same observations; raise if they differ."""

    def case(b: int) -> tuple[Feeds, np.ndarray]:
        feeds = example_inputs(norm, cond_steps, b, seed=1000 + b)
        return feeds, mean_env_units(policy, norm, feeds["obs"])

    return compare_with_torch(session_run, case, "the torch Gaussian mean", batches, tolerance)

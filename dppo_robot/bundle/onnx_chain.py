"""Export the whole evaluation chain of a diffusion policy as one ONNX graph.

The graph is traced from the same DiffusionPolicy.sample code the torch sampler runs, with
the loop unrolled (no Loop op, so CUDA graphs and TensorRT can take it) and normalisation
folded in. Inputs: obs float32 [B, To, Do] (env units), noise float32 [B, S, Tp, Da],
image_<camera> uint8 [B, To, 3, H, W] per camera. Output: actions float32 [B, Tp, Da].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from dppo_robot.bundle.onnx_graph import OPSET, compare_with_torch, example_images, example_obs, trace_onnx
from dppo_robot.io_spec import IOSpec
from dppo_robot.model.diffusion import DiffusionPolicy
from dppo_robot.model.env_units import noise_steps, sample_env_units
from dppo_robot.model.normalization import Normalization
from dppo_robot.model.normalization_module import NormalizationModule

__all__ = ["OPSET", "ChainGraph", "example_inputs", "export_chain_onnx", "input_names", "verify_against_torch"]


class ChainGraph(nn.Module):
    """obs, noise, *images -> actions, in environment units, deterministic given noise."""

    def __init__(self, policy: DiffusionPolicy, norm: Normalization, cameras: list[str]) -> None:
        super().__init__()
        self.policy = policy
        self.norm = NormalizationModule(norm)
        self.cameras = list(cameras)

    def forward(self, obs: torch.Tensor, noise: torch.Tensor, *images: torch.Tensor) -> torch.Tensor:
        cond: dict = {"state": self.norm.normalize_obs(obs)}
        if self.cameras:
            cond["images"] = dict(zip(self.cameras, images))
        step_noise = None if self.policy.use_ddim else noise[:, 1:]
        out = self.policy.sample(cond, "eval", x_T=noise[:, 0], step_noise=step_noise).actions
        return self.norm.denormalize_action(out)


def input_names(spec: IOSpec) -> list[str]:
    return ["obs", "noise", *[f"image_{c.name}" for c in spec.cameras]]


def example_inputs(
    policy: DiffusionPolicy, norm: Normalization, spec: IOSpec, cond_steps: int, batch: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Random inputs in environment units: obs [B, To, Do], noise [B, S, Tp, Da], images per camera."""
    rng = np.random.default_rng(seed)
    obs = example_obs(norm, cond_steps, batch, rng)
    noise = rng.standard_normal((batch, noise_steps(policy), policy.horizon_steps, policy.action_dim)).astype(
        np.float32
    )
    return obs, noise, example_images(spec, cond_steps, batch, rng)


def _feeds(obs: np.ndarray, noise: np.ndarray, images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"obs": obs, "noise": noise, **{f"image_{k}": v for k, v in images.items()}}


def export_chain_onnx(
    policy: DiffusionPolicy, norm: Normalization, spec: IOSpec, cond_steps: int, path: str | Path | None = None
) -> bytes:
    """Trace the unrolled chain to ONNX (weights embedded); returns the model bytes, writes path if given."""
    policy = policy.eval()
    graph = ChainGraph(policy, norm, [c.name for c in spec.cameras])
    return trace_onnx(graph, _feeds(*example_inputs(policy, norm, spec, cond_steps, batch=2)), path)


def verify_against_torch(
    session_run,
    policy: DiffusionPolicy,
    norm: Normalization,
    spec: IOSpec,
    cond_steps: int,
    batches: tuple[int, ...] = (1, 8),
    tolerance: float = 1e-4,
) -> dict:
    """Compare the ONNX chain with the torch sampler on the same inputs; raise if they differ.

    session_run(feeds) -> actions. Returns {batch: max_abs_diff} plus the tolerance.
    """

    def case(b: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        obs, noise, images = example_inputs(policy, norm, spec, cond_steps, b, seed=1000 + b)
        return _feeds(obs, noise, images), sample_env_units(policy, norm, obs, noise, images)

    return compare_with_torch(session_run, case, "the torch sampler", batches, tolerance)

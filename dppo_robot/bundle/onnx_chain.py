"""Export the whole evaluation chain of a diffusion policy as one ONNX graph.

The graph is traced from the same DiffusionPolicy.sample code the torch sampler runs, with
the loop unrolled (no Loop op, so CUDA graphs and TensorRT can take it) and normalisation
folded in. Inputs: obs float32 [B, To, Do] (env units), noise float32 [B, S, Tp, Da],
image_<camera> uint8 [B, To, 3, H, W] per camera. Output: actions float32 [B, Tp, Da].
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from dppo_robot.io_spec import IOSpec
from dppo_robot.model.diffusion import DiffusionPolicy
from dppo_robot.model.env_units import noise_steps, sample_env_units
from dppo_robot.model.normalization import Normalization
from dppo_robot.model.normalization_module import NormalizationModule

OPSET = 17


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
    """Random inputs in environment units: obs spread over (and a little past) the data range."""
    rng = np.random.default_rng(seed)
    lo, hi = norm.obs_min, norm.obs_max
    u = rng.uniform(-0.1, 1.1, size=(batch, cond_steps, lo.shape[0])).astype(np.float32)
    obs = (lo + u * (hi - lo)).astype(np.float32)
    noise = rng.standard_normal((batch, noise_steps(policy), policy.horizon_steps, policy.action_dim)).astype(
        np.float32
    )
    images = {
        c.name: rng.integers(0, 256, size=(batch, cond_steps, 3, c.height, c.width), dtype=np.uint8)
        for c in spec.cameras
    }
    return obs, noise, images


def export_chain_onnx(
    policy: DiffusionPolicy, norm: Normalization, spec: IOSpec, cond_steps: int, path: str | Path | None = None
) -> bytes:
    """Trace the unrolled chain to ONNX (weights embedded); returns the model bytes, writes path if given."""
    policy = policy.eval()
    graph = ChainGraph(policy, norm, [c.name for c in spec.cameras]).eval()
    obs, noise, images = example_inputs(policy, norm, spec, cond_steps, batch=2)
    args = (torch.from_numpy(obs), torch.from_numpy(noise), *[torch.from_numpy(images[c.name]) for c in spec.cameras])
    names = input_names(spec)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            args,
            buf,
            input_names=names,
            output_names=["actions"],
            dynamic_axes={n: {0: "B"} for n in [*names, "actions"]},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    model = onnx.load_from_string(buf.getvalue())
    loops = [n.op_type for n in model.graph.node if n.op_type in ("Loop", "Scan", "If")]
    if loops:
        raise RuntimeError(f"exported chain contains control flow ops {sorted(set(loops))}; it must be unrolled")
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    if path is not None:
        Path(path).write_bytes(data)
    return data


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
    result: dict = {"tolerance_env_units": tolerance, "max_abs_diff": {}}
    for b in batches:
        obs, noise, images = example_inputs(policy, norm, spec, cond_steps, b, seed=1000 + b)
        ref = sample_env_units(policy, norm, obs, noise, images)
        feeds = {"obs": obs, "noise": noise, **{f"image_{k}": v for k, v in images.items()}}
        got = session_run(feeds)
        diff = float(np.max(np.abs(got - ref)))
        result["max_abs_diff"][str(b)] = diff
        if not np.isfinite(diff) or diff > tolerance:
            raise RuntimeError(
                f"ONNX chain disagrees with the torch sampler at batch {b}: max abs diff {diff:.3g} "
                f"> tolerance {tolerance:g} (environment units)"
            )
    return result

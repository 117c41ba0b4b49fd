"""A small freshly initialised policy bundle whose obs/action spec is a registered task's.

For integration tests, `dppo-robot bench node` and smoke runs of the ROS stack: the network is
untrained, but the bundle is real (ONNX chain, verified, hashed) and speaks the task's slices.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dppo_robot.bundle.export import write_bundle
from dppo_robot.bundle.manifest import Provenance
from dppo_robot.model.normalization import Normalization
from dppo_robot.model.policy_config import DenoiserConfig, DiffusionConfig, PolicyConfig
from dppo_robot.model.policy_factory import build_diffusion_policy


def fresh_task_bundle(
    out_dir: str | Path,
    task: str = "reach2d",
    cond_steps: int = 2,
    horizon_steps: int = 8,
    act_steps: int = 4,
    obs_range: tuple[list[float], list[float]] | None = None,
    seed: int = 0,
    name: str = "",
    control_hz: float | None = None,
) -> Path:
    """Write a fresh DDIM MLP bundle for `task`; obs_range (min, max) defaults to +-2 per dim."""
    import dppo_robot.envs  # noqa: F401  (registers the tasks)
    from dppo_robot.envs.registry import default_task_config, task_io_spec

    spec = task_io_spec(default_task_config(task))
    if control_hz is not None:  # e.g. timing the nodes at rates the task itself does not run at
        spec.control_hz = float(control_hz)
    do, da = spec.obs_dim, spec.action_dim
    cfg = PolicyConfig(
        obs_dim=do,
        action_dim=da,
        cond_steps=cond_steps,
        horizon_steps=horizon_steps,
        act_steps=act_steps,
        denoiser=DenoiserConfig(kind="mlp", mlp_dims=[64, 64], time_dim=8),
        diffusion=DiffusionConfig(denoising_steps=10, ddim_steps=5),
    )
    torch.manual_seed(seed)
    policy = build_diffusion_policy(cfg, spec).eval()
    lo, hi = obs_range or ([-2.0] * do, [2.0] * do)
    norm = Normalization(
        np.asarray(lo, np.float32), np.asarray(hi, np.float32), -np.ones(da, np.float32), np.ones(da, np.float32)
    )
    out = Path(out_dir)
    write_bundle(
        policy, cfg, spec, norm, out, name or f"fresh_{task}", Provenance("fresh", "dppo_robot", None), overwrite=True
    )
    return out

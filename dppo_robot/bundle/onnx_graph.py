"""What every exported policy graph shares: example inputs, tracing to ONNX, the torch comparison.

The policy-specific graphs live in onnx_chain (diffusion) and onnx_gaussian (Gaussian mean).
Shape legend: obs float32 [B, To, Do] (env units), image_<camera> uint8 [B, To, 3, H, W],
actions float32 [B, Tp, Da] (env units).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from dppo_robot.io_spec import IOSpec
from dppo_robot.model.normalization import Normalization

OPSET = 17

Feeds = dict[str, np.ndarray]


def example_obs(norm: Normalization, cond_steps: int, batch: int, rng: np.random.Generator) -> np.ndarray:
    """obs [B, To, Do] in environment units, spread over (and a little past) the data range."""
    lo, hi = norm.obs_min, norm.obs_max
    u = rng.uniform(-0.1, 1.1, size=(batch, cond_steps, lo.shape[0])).astype(np.float32)
    return (lo + u * (hi - lo)).astype(np.float32)


def example_images(spec: IOSpec, cond_steps: int, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random uint8 frames {camera: [B, To, 3, H, W]} for each camera of the spec."""
    return {
        c.name: rng.integers(0, 256, size=(batch, cond_steps, 3, c.height, c.width), dtype=np.uint8)
        for c in spec.cameras
    }


def trace_onnx(graph: nn.Module, feeds: Feeds, path: str | Path | None = None) -> bytes:
    """Trace graph(*feeds.values()) -> actions to ONNX (batch axis dynamic, weights embedded).

    The graph inputs are named after the keys of feeds, in order. Refuses control flow (the
    graph must be unrolled); returns the checked model bytes and writes path if given.
    """
    names = list(feeds)
    args = tuple(torch.from_numpy(v) for v in feeds.values())
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph.eval(),
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
        raise RuntimeError(f"exported graph contains control flow ops {sorted(set(loops))}; it must be unrolled")
    got = [i.name for i in model.graph.input]
    if got != names:
        raise RuntimeError(f"exported graph has inputs {got}, expected {names} (an input the policy does not use?)")
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def compare_with_torch(
    session_run: Callable[[Feeds], np.ndarray],
    case: Callable[[int], tuple[Feeds, np.ndarray]],
    what: str,
    batches: tuple[int, ...] = (1, 8),
    tolerance: float = 1e-4,
) -> dict:
    """Run the graph and the torch reference on the same inputs per batch size; raise if they differ.

    case(batch) -> (feeds, reference actions [B, Tp, Da]); session_run(feeds) -> actions.
    Returns {"tolerance_env_units": tolerance, "max_abs_diff": {batch: diff}}.
    """
    result: dict = {"tolerance_env_units": tolerance, "max_abs_diff": {}}
    for b in batches:
        feeds, ref = case(b)
        got = session_run(feeds)
        diff = float(np.max(np.abs(got - ref)))
        result["max_abs_diff"][str(b)] = diff
        if not np.isfinite(diff) or diff > tolerance:
            raise RuntimeError(
                f"ONNX graph disagrees with {what} at batch {b}: max abs diff {diff:.3g} "
                f"> tolerance {tolerance:g} (environment units)"
            )
    return result

"""FLOPs and weight traffic of one sampling chain, counted on the eager torch chain.

FLOPs are counted with torch.utils.flop_counter.FlopCounterMode over one full chain in
environment units (sample_env_units): 2 x multiply-adds of every matmul / linear / conv /
transposed conv / attention matmul the chain runs, including the image encoder (run once per
sample and network) and the cond / time MLPs. Elementwise work (activations, LayerNorm,
GroupNorm, the DDPM/DDIM update, normalisation) is not counted; at these sizes it is well
under 1 % of the total.

Weight bytes: weight_bytes is the size of the distinct parameters the chain touches (actor
and actor_ft when both serve steps, only the one that does otherwise). weight_bytes_read
counts a module's parameters once per call of that module, i.e. what a chain that keeps no
weights in cache between network evaluations must stream from memory: the denoiser head is
read S times, an image encoder run once per sample only once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from dppo_robot.bundle.onnx_chain import example_inputs
from dppo_robot.io_spec import IOSpec
from dppo_robot.model.diffusion import DiffusionPolicy
from dppo_robot.model.env_units import sample_env_units
from dppo_robot.model.normalization import Normalization


@dataclass
class ChainCost:
    flops: int  # 2 x multiply-adds of one chain at the given batch
    weight_bytes: int  # distinct parameter bytes the chain uses
    weight_bytes_read: int  # parameter bytes summed over every module call
    network_evals: int  # denoiser forward calls (S)
    batch: int

    def to_dict(self) -> dict:
        return asdict(self)


def count_flops(fn: Callable[..., object], *args, **kwargs) -> int:
    """FLOPs (2 x MACs) of the matmul-like ops fn(*args, **kwargs) runs."""
    with FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


def _param_bytes(params) -> int:
    return int(sum(p.numel() * p.element_size() for p in params))


def chain_cost(
    policy: DiffusionPolicy, norm: Normalization, spec: IOSpec, cond_steps: int, batch: int = 1
) -> ChainCost:
    """Count FLOPs and weight bytes of one evaluation chain (eval mode) at the given batch."""
    policy = policy.eval()
    obs, noise, images = example_inputs(policy, norm, spec, cond_steps, batch, seed=0)
    calls: dict[int, int] = {}
    owners: dict[int, nn.Module] = {}
    handles = []

    def counter(module: nn.Module, *_):
        calls[id(module)] = calls.get(id(module), 0) + 1

    for m in policy.modules():
        if any(True for _ in m.parameters(recurse=False)):
            owners[id(m)] = m
            handles.append(m.register_forward_hook(counter))
    evals = {"n": 0}

    def denoiser_counter(*_):
        evals["n"] += 1

    nets = [n for n in (policy.actor, policy.actor_ft) if n is not None]
    handles.extend(n.register_forward_hook(denoiser_counter) for n in nets)
    try:
        with torch.inference_mode():
            flops = count_flops(sample_env_units, policy, norm, obs, noise, images)
    finally:
        for h in handles:
            h.remove()
    used: dict[int, torch.Tensor] = {}
    read = 0
    for mid, n_calls in calls.items():
        params = list(owners[mid].parameters(recurse=False))
        read += n_calls * _param_bytes(params)
        used.update({id(p): p for p in params})
    return ChainCost(flops, _param_bytes(used.values()), read, evals["n"], batch)

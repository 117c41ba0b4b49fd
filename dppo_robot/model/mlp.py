"""Multi-layer perceptrons: plain MLP and the pre-activation residual MLP.

Module names match the reference implementation's state dicts (moduleList.i.linear_1,
layers.i.l1, ...) so reference checkpoints load without renaming.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = {
    "ReLU": nn.ReLU,
    "ELU": nn.ELU,
    "GELU": nn.GELU,
    "Tanh": nn.Tanh,
    "Mish": nn.Mish,
    "Identity": nn.Identity,
    "Softplus": nn.Softplus,
}


def activation(name: str) -> nn.Module:
    """An activation module by its reference name (Mish, ReLU, ...)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class MLP(nn.Module):
    """[.., dims[0]] -> [.., dims[-1]]; optional LayerNorm after each hidden linear."""

    def __init__(
        self,
        dims: Sequence[int],
        activation_type: str = "Mish",
        out_activation_type: str = "Identity",
        use_layernorm: bool = False,
        use_layernorm_final: bool = False,
    ) -> None:
        super().__init__()
        if len(dims) < 2:
            raise ValueError(f"MLP needs at least input and output dims, got {list(dims)}")
        self.moduleList = nn.ModuleList()
        n = len(dims) - 1
        for i in range(n):
            layers: list[tuple[str, nn.Module]] = [("linear_1", nn.Linear(dims[i], dims[i + 1]))]
            if use_layernorm and (i < n - 1 or use_layernorm_final):
                layers.append(("norm_1", nn.LayerNorm(dims[i + 1])))
            act = activation_type if i < n - 1 else out_activation_type
            layers.append(("act_1", activation(act)))
            self.moduleList.append(nn.Sequential(OrderedDict(layers)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for m in self.moduleList:
            x = m(x)
        return x


class ResidualBlock(nn.Module):
    """Two-layer pre-activation residual block: x + l2(act(n2(l1(act(n1(x))))))."""

    def __init__(self, hidden_dim: int, activation_type: str = "Mish", use_layernorm: bool = False) -> None:
        super().__init__()
        self.l1 = nn.Linear(hidden_dim, hidden_dim)
        self.l2 = nn.Linear(hidden_dim, hidden_dim)
        self.act = activation(activation_type)
        if use_layernorm:
            self.norm1 = nn.LayerNorm(hidden_dim, eps=1e-6)
            self.norm2 = nn.LayerNorm(hidden_dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if hasattr(self, "norm1"):
            h = self.norm1(h)
        h = self.l1(self.act(h))
        if hasattr(self, "norm2"):
            h = self.norm2(h)
        h = self.l2(self.act(h))
        return h + x


class ResidualMLP(nn.Module):
    """Linear in, (len(dims) - 3) / 2 residual blocks of width dims[1], linear out.

    dims = [in, h, h, h, h, out] gives one input layer, two residual blocks, one output layer.
    """

    def __init__(
        self,
        dims: Sequence[int],
        activation_type: str = "Mish",
        out_activation_type: str = "Identity",
        use_layernorm: bool = False,
        use_layernorm_final: bool = False,
    ) -> None:
        super().__init__()
        hidden = dims[1]
        n_hidden = len(dims) - 3
        if n_hidden < 0 or n_hidden % 2:
            raise ValueError(f"ResidualMLP needs an even number of hidden layers after the first; dims={list(dims)}")
        if any(d != hidden for d in dims[1:-1]):
            raise ValueError(f"ResidualMLP hidden dims must all be equal; dims={list(dims)}")
        self.layers = nn.ModuleList([nn.Linear(dims[0], hidden)])
        self.layers.extend(ResidualBlock(hidden, activation_type, use_layernorm) for _ in range(1, n_hidden, 2))
        self.layers.append(nn.Linear(hidden, dims[-1]))
        if use_layernorm_final:
            self.layers.append(nn.LayerNorm(dims[-1]))
        self.layers.append(activation(out_activation_type))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def make_mlp(dims: Sequence[int], residual: bool, **kwargs) -> nn.Module:
    """ResidualMLP when residual else MLP, with the same keyword arguments."""
    return ResidualMLP(dims, **kwargs) if residual else MLP(dims, **kwargs)

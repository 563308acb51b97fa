"""Multilayer perceptrons whose hidden neurons come in T types.

Each hidden layer of width H is split into T contiguous equal blocks of H/T neurons;
block t uses activation type t. Parameters are a flat tuple (W1, b1, W2, b2, …) with
W of shape (out, in), so they stack over seeds: with parameters of shape (S, out, in) and inputs (S, B, in)
one call evaluates S networks.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

Params = tuple[Tensor, ...]
# An activation of T neuron types: (..., T, n) → (..., T, n), type t acting on [..., t, :].
TypedActivation = Callable[[Tensor], Tensor]


def block_size(width: int, n_types: int) -> int:
    """Neurons per type in a hidden layer of `width` neurons."""
    if n_types < 1 or width % n_types:
        raise ValueError(f"hidden width {width} is not divisible into {n_types} neuron types")
    return width // n_types


def layer_sizes(n_in: int, width: int, depth: int, n_out: int) -> list[int]:
    return [n_in] + [width] * depth + [n_out]


def init_mlp(sizes: Sequence[int], generator: torch.Generator,
             dtype: torch.dtype = torch.float32) -> Params:
    """PyTorch's default Linear init, U(±1/√fan_in) for weights and biases, from `generator`."""
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        bound = n_in ** -0.5
        params.append((torch.rand((n_out, n_in), generator=generator, dtype=dtype) * 2 - 1) * bound)
        params.append((torch.rand((n_out,), generator=generator, dtype=dtype) * 2 - 1) * bound)
    return tuple(params)


def flatten(params: Params) -> Tensor:
    """All parameters as one vector (N,)."""
    return torch.cat([p.reshape(-1) for p in params])


def unflatten(flat: Tensor, like: Params) -> Params:
    """Views of a flat parameter vector (N,) shaped like `like`."""
    return tuple(part.view_as(p) for part, p in zip(flat.split([p.numel() for p in like]), like))


def apply_typed(activation: TypedActivation, z: Tensor, n_types: int) -> Tensor:
    """The activation of pre-activations z (..., H), hidden units in n_types equal blocks."""
    width = z.shape[-1]
    typed = z.reshape(*z.shape[:-1], n_types, block_size(width, n_types))
    return activation(typed).reshape(z.shape)


def layers(params: Params, x: Tensor, activation: TypedActivation, n_types: int,
           noise: Sequence[Tensor] | None = None) -> list[Tensor]:
    """Every hidden layer's post-activation output (..., B, H_l), then the network's output
    (..., B, n_out); x (..., B, n_in), leading axes shared with the parameters.

    `noise[l]` (H_l,) is added to hidden layer l after its activation.
    """
    outputs = []
    h = x
    n_layers = len(params) // 2
    for layer in range(n_layers):
        h = h @ params[2 * layer].mT + params[2 * layer + 1].unsqueeze(-2)
        if layer < n_layers - 1:
            h = apply_typed(activation, h, n_types)
            if noise is not None:
                h = h + noise[layer]
        outputs.append(h)
    return outputs


def forward(params: Params, x: Tensor, activation: TypedActivation, n_types: int,
            noise: Sequence[Tensor] | None = None) -> Tensor:
    """x (..., B, n_in) → (..., B, n_out), leading axes shared with the parameters.

    `noise[l]` (H_l,) is added to hidden layer l after its activation.
    """
    return layers(params, x, activation, n_types, noise)[-1]


def blockwise(fns: Sequence[Callable[[Tensor], Tensor]]) -> TypedActivation:
    """A typed activation from one elementwise function per type."""
    def apply(x: Tensor) -> Tensor:
        return torch.stack([fn(x[..., t, :]) for t, fn in enumerate(fns)], dim=-2)
    return apply


class DiverseMLP(nn.Module):
    """An MLP whose hidden layers hold len(activations) neuron types in equal blocks."""

    def __init__(self, sizes: Sequence[int], activations: Sequence[nn.Module],
                 generator: torch.Generator | None = None):
        super().__init__()
        for width in sizes[1:-1]:
            block_size(width, len(activations))
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.params = nn.ParameterList(init_mlp(sizes, generator))
        self.activations = nn.ModuleList(activations)

    def forward(self, x: Tensor) -> Tensor:
        return forward(tuple(self.params), x, blockwise(list(self.activations)),
                       len(self.activations))

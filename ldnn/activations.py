"""Activation functions: standard ones, learned sub-networks and frozen tables.

A *learned activation* is σ(x) = base(x) + scale·g(x) with g a 1→W→1 tanh network.
Several types are held stacked, so every parameter has a leading type axis T and all
types are evaluated in one batched operation.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

Activation = Callable[[Tensor], Tensor]

STANDARD: dict[str, Activation] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sin": torch.sin,
    "zero": torch.zeros_like,
}


def standard(name: str) -> Activation:
    """The standard activation called `name` (one of STANDARD)."""
    if name not in STANDARD:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(STANDARD)}")
    return STANDARD[name]


def init_subnetworks(n_types: int, width: int, generator: torch.Generator,
                     dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """Parameters of T sub-networks 1→W→1, PyTorch's default Linear init.

    Returns w1, b1, w2 of shape (T, W) and b2 of shape (T,).
    """
    def uniform(shape, bound):
        return (torch.rand(shape, generator=generator, dtype=dtype) * 2 - 1) * bound

    hidden_bound = 1.0 / np.sqrt(width)
    return {
        "w1": uniform((n_types, width), 1.0),
        "b1": uniform((n_types, width), 1.0),
        "w2": uniform((n_types, width), hidden_bound),
        "b2": uniform((n_types,), hidden_bound),
    }


def _hidden(params: dict[str, Tensor], x: Tensor) -> Tensor:
    """The sub-networks' tanh layer: x (..., T, n) → (..., T, n, W)."""
    return torch.tanh(x[..., None] * params["w1"][:, None, :] + params["b1"][:, None, :])


def _output(params: dict[str, Tensor], hidden: Tensor) -> Tensor:
    return (hidden * params["w2"][:, None, :]).sum(-1) + params["b2"][:, None]


def subnetwork(params: dict[str, Tensor], x: Tensor) -> Tensor:
    """Evaluate the T sub-networks: x (..., T, n) → (..., T, n); type t acts on x[..., t, :]."""
    return _output(params, _hidden(params, x))


def subnetwork_and_slope(params: dict[str, Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
    """g_t(x) and g_t'(x) in closed form: x (T, G) → two (T, G) tensors."""
    hidden = _hidden(params, x)
    slope = ((1 - hidden * hidden) * (params["w1"] * params["w2"])[:, None, :]).sum(-1)
    return _output(params, hidden), slope


def learned(params: dict[str, Tensor], x: Tensor, base: str, scale: float,
            nodes: int | None = None) -> Tensor:
    """σ_t(x) = base(x) + scale·g_t(x): x (..., T, n) → (..., T, n).

    With `nodes`, g_t is evaluated exactly only on `nodes` uniform points spanning the
    range of x and interpolated by cubic Hermite splines through its values and slopes:
    error O(h⁴) in σ and O(h³) in σ' for node spacing h, at a cost independent of x's size.
    """
    if nodes is None:
        return standard(base)(x) + scale * subnetwork(params, x)
    return standard(base)(x) + scale * _hermite_subnetwork(params, x, nodes)


def _hermite_subnetwork(params: dict[str, Tensor], x: Tensor, nodes: int) -> Tensor:
    n_types = params["b2"].shape[0]
    low, high = x.detach().min(), x.detach().max()
    step = torch.clamp(high - low, min=1e-6) / (nodes - 1)
    grid = low + step * torch.arange(nodes, dtype=x.dtype)
    value, slope = subnetwork_and_slope(params, grid.expand(n_types, nodes))
    slope = slope * step
    y0, y1, d0, d1 = value[:, :-1], value[:, 1:], slope[:, :-1], slope[:, 1:]
    # Cubic on each interval in the local coordinate t ∈ [0, 1]: c0 + c1 t + c2 t² + c3 t³.
    coefficients = torch.stack([y0, d0, 3 * (y1 - y0) - 2 * d0 - d1, 2 * (y0 - y1) + d0 + d1], -1)
    position = (x - low) / step
    left = position.detach().floor().clamp(0, nodes - 2)
    t = position - left
    index = left.long() + torch.arange(n_types, device=x.device)[:, None] * (nodes - 1)
    c = coefficients.reshape(-1, 4)[index]
    return c[..., 0] + t * (c[..., 1] + t * (c[..., 2] + t * c[..., 3]))


def interpolate(grid: Tensor, values: Tensor, x: Tensor) -> Tensor:
    """Piecewise-linear interpolation on a uniform grid, extrapolating the end segments.

    grid (P,) uniform and increasing, values (T, P); x (..., T, n) → (..., T, n).
    """
    n_points = grid.shape[0]
    step = (grid[-1] - grid[0]) / (n_points - 1)
    position = (x - grid[0]) / step
    left = position.detach().floor().clamp(0, n_points - 2).long()
    frac = position - left
    offsets = torch.arange(values.shape[0], device=x.device)[:, None] * n_points
    flat = values.reshape(-1)
    index = left + offsets
    y0 = flat[index]
    y1 = flat[index + 1]
    return y0 + frac * (y1 - y0)


def tabulate(fn: Activation, low: float, high: float, points: int,
             dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """Sample an activation on `points` uniform grid points of [low, high]: grid (P,), values (P,)."""
    grid = torch.linspace(low, high, points, dtype=dtype)
    with torch.no_grad():
        return grid, fn(grid)


def tabulate_learned(params: dict[str, Tensor], base: str, scale: float, low: float, high: float,
                     points: int) -> tuple[Tensor, Tensor]:
    """All T learned types on a uniform grid, in float64: grid (P,), values (T, P)."""
    grid = torch.linspace(low, high, points, dtype=torch.float64)
    params64 = {k: v.detach().double() for k, v in params.items()}
    with torch.no_grad():
        values = learned(params64, grid.expand(params["b2"].shape[0], -1), base, scale)
    return grid, values


class LearnedActivation(nn.Module):
    """One learned activation σ(x) = base(x) + scale·g(x), usable as an ordinary module."""

    def __init__(self, params: dict[str, Tensor], base: str, scale: float, index: int = 0):
        super().__init__()
        self.params = nn.ParameterDict({k: nn.Parameter(v[index:index + 1].clone())
                                        for k, v in params.items()})
        self.base, self.scale = base, scale

    def forward(self, x: Tensor) -> Tensor:
        y = learned(dict(self.params), x.reshape(1, -1), self.base, self.scale)
        return y.reshape(x.shape)


class TabulatedActivation(nn.Module):
    """A frozen activation: values on a uniform grid, linear interpolation and extrapolation."""

    def __init__(self, grid: Tensor, values: Tensor):
        super().__init__()
        if grid.ndim != 1 or values.shape != grid.shape or grid.shape[0] < 2:
            raise ValueError("grid and values must be 1-d of the same length ≥ 2")
        self.register_buffer("grid", grid)
        self.register_buffer("values", values)

    @classmethod
    def from_function(cls, fn: Activation, low: float, high: float, points: int,
                      dtype: torch.dtype = torch.float64) -> "TabulatedActivation":
        return cls(*tabulate(fn, low, high, points, dtype))

    def forward(self, x: Tensor) -> Tensor:
        grid, values = self.grid.to(x.dtype), self.values.to(x.dtype)
        return interpolate(grid, values[None], x.reshape(1, -1)).reshape(x.shape)

    def save(self, path: str | Path) -> None:
        save_table(path, self.grid, self.values[None])

    @classmethod
    def load(cls, path: str | Path, index: int = 0) -> "TabulatedActivation":
        """Type `index` of a table written by `save_table`."""
        grid, values = load_table(path)
        return cls(grid, values[index])


def save_table(path: str | Path, grid: Tensor, values: Tensor) -> None:
    """Write T tabulated activations: grid (P,), values (T, P), as .npz (atomically)."""
    from ldnn.io import atomic_path
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, grid=grid.numpy(), values=values.numpy())


def load_table(path: str | Path) -> tuple[Tensor, Tensor]:
    """Read a table written by `save_table`: grid (P,), values (T, P)."""
    with np.load(path) as table:
        return torch.from_numpy(table["grid"]), torch.from_numpy(table["values"])


def arm_activation(arm: str, grid: Tensor, values: Tensor) -> tuple[Callable, int]:
    """The typed activation of a frozen-training arm and its number of neuron types.

    arm: a standard activation name, "typeK" (all neurons of learned type K) or "mixed"
    (the T learned types in equal blocks); grid (P,), values (T, P) from `tabulate`.
    """
    if arm in STANDARD:
        return standard(arm), 1
    if arm == "mixed":
        return (lambda x: interpolate(grid.to(x.dtype), values.to(x.dtype), x)), values.shape[0]
    if arm.startswith("type") and arm[4:].isdigit() and 1 <= int(arm[4:]) <= values.shape[0]:
        row = values[int(arm[4:]) - 1][None]
        return (lambda x: interpolate(grid.to(x.dtype), row.to(x.dtype), x)), 1
    raise ValueError(f"unknown arm {arm!r} for {values.shape[0]} learned types")

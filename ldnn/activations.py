"""Activation functions: standard ones, learned sub-networks and frozen tables.

A *learned activation* is σ(x) = base(x) + scale·g(x) with g a 1→W→1 tanh network.
Several types are held stacked, so every parameter has a leading type axis T and all
types are evaluated in one batched operation.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from ldnn.io import write_npz

Activation = Callable[[Tensor], Tensor]

STANDARD: dict[str, Activation] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sin": torch.sin,
    "zero": torch.zeros_like,
}

STANDARD_SLOPES: dict[str, Activation] = {
    "relu": lambda x: (x > 0).to(x.dtype),
    "tanh": lambda x: 1 - torch.tanh(x) ** 2,
    "sin": torch.cos,
    "zero": torch.zeros_like,
}


def standard(name: str) -> Activation:
    """The standard activation called `name` (one of STANDARD)."""
    if name not in STANDARD:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(STANDARD)}")
    return STANDARD[name]


def standard_slope(name: str) -> Activation:
    """The derivative of the standard activation called `name`."""
    standard(name)
    return STANDARD_SLOPES[name]


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
    """g_t(x) and g_t'(x) in closed form: x (..., T, n) → two (..., T, n) tensors."""
    hidden = _hidden(params, x)
    slope = ((1 - hidden * hidden) * (params["w1"] * params["w2"])[:, None, :]).sum(-1)
    return _output(params, hidden), slope


class _SubnetworkAtNodes(torch.autograd.Function):
    """g_t and g_t' at fixed nodes x (T, G) → two (T, G), as subnetwork_and_slope, with a
    hand-written backward to the parameters: one pass over the hidden layer (T, G, W)
    instead of autograd's graph of the closed form. Not differentiable in x."""

    @staticmethod
    def forward(ctx, w1, b1, w2, b2, x):
        hidden = torch.tanh(torch.addcmul(b1[:, None, :], x[..., None], w1[:, None, :]))
        damp = 1 - hidden * hidden  # tanh' at the hidden units' pre-activations
        value = torch.bmm(hidden, w2[..., None])[..., 0] + b2[:, None]
        slope = torch.bmm(damp, (w1 * w2)[..., None])[..., 0]
        ctx.save_for_backward(w1, w2, x, hidden, damp)
        return value, slope

    @staticmethod
    def backward(ctx, grad_value, grad_slope):
        w1, w2, x, hidden, damp = ctx.saved_tensors
        gv, gs = grad_value[:, None, :], grad_slope[:, None, :]  # (T, 1, G)
        # ∂/∂(pre-activation) of value (w2·damp) and of slope (w1·w2·tanh'' = −2 w1 w2 h damp).
        grad_pre = (grad_value[..., None] - 2 * (grad_slope[..., None] * w1[:, None, :]) * hidden
                    ) * damp * w2[:, None, :]
        slope_damp = torch.bmm(gs, damp)[:, 0]
        grad_w1 = torch.bmm(x[:, None, :], grad_pre)[:, 0] + slope_damp * w2
        grad_w2 = torch.bmm(gv, hidden)[:, 0] + slope_damp * w1
        return grad_w1, grad_pre.sum(1), grad_w2, grad_value.sum(1), None


def subnetwork_at_nodes(params: dict[str, Tensor], nodes: Tensor) -> tuple[Tensor, Tensor]:
    """g_t and g_t' at grid nodes (T, G) → two (T, G): subnetwork_and_slope with a cheaper
    gradient to the parameters (the nodes themselves get none)."""
    return _SubnetworkAtNodes.apply(params["w1"], params["b1"], params["w2"], params["b2"],
                                    nodes)


def learned(params: dict[str, Tensor], x: Tensor, base: str, scale: float) -> Tensor:
    """σ_t(x) = base(x) + scale·g_t(x): x (..., T, n) → (..., T, n)."""
    return standard(base)(x) + scale * subnetwork(params, x)


class SplineTable:
    """T functions as cubic Hermite splines through their exact values and slopes at the
    nodes j·h of a uniform grid anchored at 0, covering [low, high]: error O(h⁴) in the
    value, O(h³) in the slope, O(h²) in the curvature.

    `value_and_slope(grid (T, G)) → two (T, G)` gives the functions' values and slopes at
    the nodes; it is called in float64, because the cubic's coefficients are differences of
    nearby values whose rounding grows as 1/h² in the curvature (the unrolled meta-gradient
    needs it). Cells are anchored at multiples of h, so a cell's cubic does not depend on
    the covered range. Building costs one evaluation per node, evaluating a gather and a
    cubic per point. The table stays differentiable with respect to whatever the nodes'
    values depend on.
    """

    def __init__(self, value_and_slope: Callable[[Tensor], tuple[Tensor, Tensor]], n_types: int,
                 spacing: float, low: float, high: float):
        self.n_types, self.spacing = n_types, spacing
        self.first = int(np.floor(low / spacing))
        self.intervals = max(1, int(np.ceil(high / spacing)) - self.first)
        nodes = spacing * torch.arange(self.first, self.first + self.intervals + 1,
                                       dtype=torch.float64)
        value, slope = value_and_slope(nodes.expand(n_types, -1))
        slope = slope * spacing
        y0, y1, d0, d1 = value[:, :-1], value[:, 1:], slope[:, :-1], slope[:, 1:]
        # Cubic on each interval in the local coordinate t ∈ [0, 1]: c0 + c1 t + c2 t² + c3 t³.
        self.coefficients = torch.stack(
            [y0, d0, 3 * (y1 - y0) - 2 * d0 - d1, 2 * (y0 - y1) + d0 + d1], -1)
        self._cast: dict[torch.dtype, Tensor] = {}

    @property
    def low(self) -> float:
        return self.first * self.spacing

    @property
    def high(self) -> float:
        return (self.first + self.intervals) * self.spacing

    def covers(self, low: float, high: float) -> bool:
        """Whether every x in [low, high] lies in a cell (the test the compiled kernel uses)."""
        return self.position(low) >= 0 and self.position(high) < self.intervals

    def coefficients_as(self, dtype: torch.dtype) -> Tensor:
        """The coefficients (T·I, 4) rounded once to `dtype`, differentiably."""
        if dtype not in self._cast:
            self._cast[dtype] = self.coefficients.to(dtype).reshape(-1, 4)
        return self._cast[dtype]

    def cells(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Row of each x's interval in `coefficients` (T·I, 4) and its local coordinate t
        (x's dtype), located in float64 as the compiled kernel does."""
        position = self.position(x.detach().double())
        left = position.floor().clamp(0, self.intervals - 1)
        offsets = torch.arange(self.n_types, device=x.device)[:, None] * self.intervals
        return left.long() + offsets, (position - left).to(x.dtype)

    def position(self, x):
        """x in cells from the table's left end (float or float64 tensor)."""
        return x * (1 / self.spacing) - self.first

    def __call__(self, x: Tensor) -> Tensor:
        """The functions at x (..., T, n) inside [low, high] → (..., T, n); differentiable
        to any order with respect to the coefficients and first order in x."""
        index, t = self.cells(x)
        t = t + (x - x.detach()) / self.spacing
        c = self.coefficients_as(x.dtype)[index]
        return c[..., 0] + t * (c[..., 1] + t * (c[..., 2] + t * c[..., 3]))

    def value_and_slope(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The functions and their derivatives at x (..., T, n) → two (..., T, n).

        One autograd node with hand-written first derivatives: not twice differentiable.
        """
        index, t = self.cells(x)
        return _SplineCells.apply(self.coefficients_as(x.dtype), x, index, t, self.spacing)


class _SplineCells(torch.autograd.Function):
    """Value and slope of the cubics `coefficients[index]` (M, 4) at local coordinates t."""

    @staticmethod
    def forward(ctx, coefficients, x, index, t, spacing):
        c0, c1, c2, c3 = coefficients[index].unbind(-1)
        value = c0 + t * (c1 + t * (c2 + t * c3))
        slope = (c1 + t * (2 * c2 + 3 * t * c3)) / spacing
        curvature = (2 * c2 + 6 * t * c3) / spacing ** 2
        ctx.save_for_backward(index, t, slope, curvature)
        ctx.spacing, ctx.rows = spacing, coefficients.shape[0]
        return value, slope

    @staticmethod
    def backward(ctx, grad_value, grad_slope):
        index, t, slope, curvature = ctx.saved_tensors
        grad_x = grad_value * slope + grad_slope * curvature
        ones, zeros = torch.ones_like(t), torch.zeros_like(t)
        powers = torch.stack([ones, t, t * t, t * t * t], -1)
        slope_powers = torch.stack([zeros, ones, 2 * t, 3 * t * t], -1) / ctx.spacing
        per_point = powers * grad_value[..., None] + slope_powers * grad_slope[..., None]
        cells = (index[..., None] * 4 + torch.arange(4, device=index.device)).reshape(-1)
        grad_c = torch.bincount(cells, per_point.reshape(-1), minlength=4 * ctx.rows)
        return grad_c.view(ctx.rows, 4), grad_x, None, None, None


# Largest |pre-activation| a table covers (4·10⁴ nodes per type at spacing 0.01); beyond it
# the inner loop has diverged.
MAX_TABLE_INPUT = 200.0


class SplineActivations:
    """Typed activation σ_t = base + scale·g_t evaluated through a SplineTable that is built
    on first use and rebuilt wider whenever inputs fall outside it; `spacing` 0 means exact.

    A smooth base is part of the table; ReLU's kink is not, so it is added exactly.
    Keep one instance for many evaluations with the same parameters (e.g. a whole inner
    loop): the table is then built once instead of once per call.
    """

    def __init__(self, params: dict[str, Tensor], base: str, scale: float, spacing: float):
        self.params, self.base, self.scale, self.spacing = params, base, scale, spacing
        self.tabulated_base = base != "relu"
        self.table: SplineTable | None = None

    def __call__(self, x: Tensor) -> Tensor:
        if not self.spacing:
            return learned(self.params, x, self.base, self.scale)
        if self.tabulated_base:
            return self._table_for(x)(x)
        return standard(self.base)(x) + self._table_for(x)(x)

    def value_and_slope(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """σ_t(x) and σ_t'(x): x (..., T, n) → two (..., T, n)."""
        if not self.spacing:
            return self._exact(self.params, x, with_base=True)
        value, slope = self._table_for(x).value_and_slope(x)
        if self.tabulated_base:
            return value, slope
        return standard(self.base)(x) + value, standard_slope(self.base)(x) + slope

    def _exact(self, params: dict[str, Tensor], x: Tensor, with_base: bool,
               subnetwork=subnetwork_and_slope) -> tuple[Tensor, Tensor]:
        g, g_slope = subnetwork(params, x)
        if not with_base:
            return self.scale * g, self.scale * g_slope
        return (standard(self.base)(x) + self.scale * g,
                standard_slope(self.base)(x) + self.scale * g_slope)

    def cover(self, low: float, high: float) -> SplineTable:
        """The table, rebuilt if it does not cover [low, high]: the union of both ranges
        and a margin of a quarter of its width on each side."""
        if self.table is None or not self.table.covers(low, high):
            if not (np.isfinite([low, high]).all() and max(-low, high) <= MAX_TABLE_INPUT):
                raise FloatingPointError(
                    f"pre-activations reach [{low:.3g}, {high:.3g}], beyond the spline table's "
                    f"±{MAX_TABLE_INPUT:g}: meta-learning diverged (try a smaller "
                    "metalearn.outer_lr)")
            if self.table is not None:
                low, high = min(low, self.table.low), max(high, self.table.high)
            margin = 0.25 * (high - low) + self.spacing
            params64 = {k: v.double() for k, v in self.params.items()}
            self.table = SplineTable(lambda grid: self._exact(params64, grid, self.tabulated_base,
                                                              subnetwork_at_nodes),
                                     self.params["b2"].shape[0], self.spacing, low - margin,
                                     high + margin)
        return self.table

    def _table_for(self, x: Tensor) -> SplineTable:
        return self.cover(float(x.detach().min()), float(x.detach().max()))


def _locate(grid: Tensor, n_types: int, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Left node of each x in the flattened (T·P,) table, its offset t in grid steps, and the
    step. A NaN x (a diverged network's) gets the first node and a NaN t, so its value is NaN."""
    n_points = grid.shape[0]
    step = (grid[-1] - grid[0]) / (n_points - 1)
    position = (x - grid[0]) / step
    left = position.detach().floor().nan_to_num(0.0).clamp(0, n_points - 2).long()
    offsets = torch.arange(n_types, device=x.device)[:, None] * n_points
    return left + offsets, position - left, step


def interpolate(grid: Tensor, values: Tensor, x: Tensor) -> Tensor:
    """Piecewise-linear interpolation on a uniform grid, extrapolating the end segments.

    grid (P,) uniform and increasing, values (T, P); x (..., T, n) → (..., T, n).
    """
    index, t, _ = _locate(grid, values.shape[0], x)
    flat = values.reshape(-1)
    y0, y1 = flat[index], flat[index + 1]
    return y0 + t * (y1 - y0)


def hermite(grid: Tensor, values: Tensor, slopes: Tensor, x: Tensor) -> Tensor:
    """Cubic Hermite interpolation through values and slopes (T, P) on a uniform grid
    (P,), extrapolated linearly with the end slopes: C¹, so its derivative is continuous.

    x (..., T, n) → (..., T, n).
    """
    index, t, step = _locate(grid, values.shape[0], x)
    flat_y, flat_d = values.reshape(-1), slopes.reshape(-1) * step
    y0, y1, d0, d1 = flat_y[index], flat_y[index + 1], flat_d[index], flat_d[index + 1]
    inside = t.clamp(0, 1)
    cubic = y0 + inside * (d0 + inside * (3 * (y1 - y0) - 2 * d0 - d1
                                          + inside * (2 * (y0 - y1) + d0 + d1)))
    return cubic + (t - inside) * torch.where(t > 1, d1, d0)


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


def learned_slopes(params: dict[str, Tensor], base: str, scale: float, grid: Tensor) -> Tensor:
    """σ_t′ of all T learned types on `grid` (P,), in float64: (T, P)."""
    params64 = {k: v.detach().double() for k, v in params.items()}
    x = grid.double().expand(params["b2"].shape[0], -1).clone().requires_grad_()
    with torch.enable_grad():
        (slopes,) = torch.autograd.grad(learned(params64, x, base, scale).sum(), x)
    return slopes


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
        grid, values, _ = load_table(path)
        return cls(grid, values[index])


def save_table(path: str | Path, grid: Tensor, values: Tensor,
               slopes: Tensor | None = None) -> None:
    """Write T tabulated activations: grid (P,), values (T, P) and optionally their slopes
    (T, P), as .npz (atomically)."""
    arrays = {"grid": grid.numpy(), "values": values.numpy()}
    write_npz(path, **arrays | ({} if slopes is None else {"slopes": slopes.numpy()}))


def load_table(path: str | Path) -> tuple[Tensor, Tensor, Tensor | None]:
    """Read a table written by `save_table`: grid (P,), values (T, P), slopes (T, P) or None."""
    with np.load(path) as table:
        slopes = torch.from_numpy(table["slopes"]) if "slopes" in table.files else None
        return torch.from_numpy(table["grid"]), torch.from_numpy(table["values"]), slopes


@dataclass(frozen=True, eq=False)
class FrozenActivation:
    """The typed activation of a frozen-training arm, (..., T, n) → (..., T, n): the
    standard function `standard`, or T learned types tabulated on grid (P,) as values
    (T, P), interpolated linearly, or by cubic Hermite splines through their `slopes`
    (T, P) where given."""
    standard: str | None = None
    grid: Tensor | None = None
    values: Tensor | None = None
    slopes: Tensor | None = None

    @property
    def n_types(self) -> int:
        return 1 if self.standard else self.values.shape[0]

    def __call__(self, x: Tensor) -> Tensor:
        if self.standard:
            return STANDARD[self.standard](x)
        grid, values = self.grid.to(x.dtype), self.values.to(x.dtype)
        if self.slopes is None:
            return interpolate(grid, values, x)
        return hermite(grid, values, self.slopes.to(x.dtype), x)

    def cells(self, dtype: torch.dtype) -> tuple[Tensor, Tensor, float, float]:
        """The tables as cubics per grid cell in `dtype`, computed as `interpolate` and
        `hermite` compute them: coefficients (T, P − 1, 4) of 1, τ, τ², τ³ (τ ∈ [0, 1) the
        position in the cell), end slopes per grid step (T, 2), the first node and the step."""
        grid, y = self.grid.to(dtype), self.values.to(dtype)
        step = (grid[-1] - grid[0]) / (grid.shape[0] - 1)
        y0, y1 = y[:, :-1], y[:, 1:]
        if self.slopes is None:
            c1 = y1 - y0
            coefficients = torch.stack([y0, c1, torch.zeros_like(c1), torch.zeros_like(c1)], -1)
            ends = torch.stack([c1[:, 0], c1[:, -1]], -1)
        else:
            d = self.slopes.to(dtype) * step
            d0, d1 = d[:, :-1], d[:, 1:]
            coefficients = torch.stack([y0, d0, 3 * (y1 - y0) - 2 * d0 - d1,
                                        2 * (y0 - y1) + d0 + d1], -1)
            ends = torch.stack([d[:, 0], d[:, -1]], -1)
        return coefficients.contiguous(), ends.contiguous(), float(grid[0]), float(step)


def arm_activation(arm: str, grid: Tensor, values: Tensor,
                   slopes: Tensor | None = None) -> tuple[FrozenActivation, int]:
    """The typed activation of a frozen-training arm and its number of neuron types.

    arm: a standard activation name, "typeK" (all neurons of learned type K) or "mixed"
    (the T learned types in equal blocks); grid (P,), values (T, P) from `tabulate`.
    Learned types are interpolated linearly, or by cubic Hermite splines when their
    `slopes` (T, P) are given (for networks that differentiate their activations).
    """
    if arm in STANDARD:
        return FrozenActivation(standard=arm), 1
    if arm == "mixed":
        rows = slice(None)
    elif arm.startswith("type") and arm[4:].isdigit() and 1 <= int(arm[4:]) <= values.shape[0]:
        rows = slice(int(arm[4:]) - 1, int(arm[4:]))
    else:
        raise ValueError(f"unknown arm {arm!r} for {values.shape[0]} learned types")
    activation = FrozenActivation(None, grid, values[rows],
                                  None if slopes is None else slopes[rows])
    return activation, activation.n_types

"""Activation functions: learned sub-networks, tabulation, interpolation, arms."""
from __future__ import annotations

import math

import pytest
import torch

from ldnn.activations import (STANDARD, LearnedActivation, SplineActivations,
                              TabulatedActivation,
                              arm_activation, hermite, init_subnetworks, interpolate,
                              learned, learned_slopes, load_table, save_table, standard,
                              subnetwork, tabulate, tabulate_learned)

# float64 round-off on O(1)–O(10) values: a few ulps times a few operations.
ATOL_GRID = 1e-12          # tabulated value at a grid point vs the function itself
ATOL_LINEAR = 1e-12        # interpolation of a linear function, |x| ≤ 20
ATOL_INTERP = 1e-12        # interpolation vs the analytic formula
ATOL_SUBNET = 1e-13        # vectorised sub-network vs an explicit double loop
ATOL_HERMITE = 1e-11       # Hermite interpolation of a cubic (exact up to round-off), |x| ≤ 20
RTOL_SLOPE_FD = 1e-8       # autograd slopes vs central differences with step 1e-5

LOW, HIGH, POINTS = -3.0, 3.0, 13


def phi64(n_types: int = 2, width: int = 5, seed: int = 0) -> dict[str, torch.Tensor]:
    return init_subnetworks(n_types, width, torch.Generator().manual_seed(seed),
                            dtype=torch.float64)


# --------------------------------------------------------------------------- standard


def test_standard_returns_named_functions():
    x = torch.linspace(-2, 2, 9, dtype=torch.float64)
    assert torch.equal(standard("relu")(x), x.clamp(min=0))
    assert torch.equal(standard("tanh")(x), torch.tanh(x))
    assert torch.equal(standard("sin")(x), torch.sin(x))
    assert torch.equal(standard("zero")(x), torch.zeros_like(x))


@pytest.mark.parametrize("name", ["gelu", "Relu", "", "type1", "mixed"])
def test_standard_rejects_unknown_name(name):
    with pytest.raises(ValueError, match="unknown activation"):
        standard(name)


# --------------------------------------------------------------------------- sub-networks


def test_init_subnetworks_shapes_dtype_bounds_and_determinism():
    n_types, width = 3, 16
    params = init_subnetworks(n_types, width, torch.Generator().manual_seed(5),
                              dtype=torch.float64)
    assert {k: tuple(v.shape) for k, v in params.items()} == {
        "w1": (n_types, width), "b1": (n_types, width), "w2": (n_types, width),
        "b2": (n_types,)}
    assert all(v.dtype == torch.float64 for v in params.values())
    # PyTorch's default Linear init: U(±1/√fan_in); fan_in is 1 for the first layer.
    assert params["w1"].abs().max() <= 1 and params["b1"].abs().max() <= 1
    assert params["w2"].abs().max() <= 1 / math.sqrt(width)
    assert params["b2"].abs().max() <= 1 / math.sqrt(width)
    again = init_subnetworks(n_types, width, torch.Generator().manual_seed(5),
                             dtype=torch.float64)
    assert all(torch.equal(params[k], again[k]) for k in params)


def test_subnetwork_matches_explicit_formula():
    """g_t(x) = Σ_j w2[t,j]·tanh(w1[t,j]·x + b1[t,j]) + b2[t], type t acting on x[..., t, :]."""
    params = phi64(n_types=2, width=4, seed=1)
    x = torch.randn((3, 2, 5), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out = subnetwork(params, x)
    assert out.shape == x.shape
    for b in range(3):
        for t in range(2):
            for i in range(5):
                expected = sum(params["w2"][t, j] * math.tanh(params["w1"][t, j] * x[b, t, i]
                                                              + params["b1"][t, j])
                               for j in range(4)) + params["b2"][t]
                assert abs(float(out[b, t, i]) - float(expected)) <= ATOL_SUBNET


@pytest.mark.parametrize("base", sorted(STANDARD))
def test_learned_is_base_plus_scaled_subnetwork(base):
    params = phi64(seed=3)
    x = torch.linspace(-4, 4, 11, dtype=torch.float64).expand(2, -1)
    scale = 0.3
    expected = standard(base)(x) + scale * subnetwork(params, x)
    torch.testing.assert_close(learned(params, x, base, scale), expected, rtol=0, atol=0)


def test_learned_activation_module_is_one_type_of_learned():
    params = phi64(seed=4)
    x = torch.linspace(-5, 5, 21, dtype=torch.float64).reshape(3, 7)
    for index in range(2):
        module = LearnedActivation(params, "sin", 0.2, index=index)
        y = module(x)
        assert y.shape == x.shape
        row = {k: v[index:index + 1] for k, v in params.items()}
        expected = learned(row, x.reshape(1, -1), "sin", 0.2).reshape(x.shape)
        torch.testing.assert_close(y, expected, rtol=0, atol=ATOL_SUBNET)
    # The module owns copies: changing it leaves the source parameters alone.
    before = params["w1"].clone()
    with torch.no_grad():
        module.params["w1"].add_(1.0)
    assert torch.equal(params["w1"], before)


# --------------------------------------------------------------------------- interpolation


def test_interpolate_between_grid_points_is_analytic_linear_interpolation():
    grid = torch.linspace(LOW, HIGH, POINTS, dtype=torch.float64)
    values = torch.randn((1, POINTS), generator=torch.Generator().manual_seed(0),
                         dtype=torch.float64)
    step = (HIGH - LOW) / (POINTS - 1)
    fractions = torch.tensor([0.0, 0.1, 0.25, 0.5, 0.9, 0.999], dtype=torch.float64)
    for i in range(POINTS - 1):
        x = (grid[i] + fractions * step)[None]
        expected = (1 - fractions) * values[0, i] + fractions * values[0, i + 1]
        torch.testing.assert_close(interpolate(grid, values, x)[0], expected,
                                   rtol=0, atol=ATOL_INTERP)


def test_interpolate_extrapolates_the_end_segments():
    grid = torch.linspace(LOW, HIGH, POINTS, dtype=torch.float64)
    values = torch.randn((1, POINTS), generator=torch.Generator().manual_seed(1),
                         dtype=torch.float64)
    step = (HIGH - LOW) / (POINTS - 1)
    below = torch.tensor([[LOW - 7.3, LOW - 0.01]], dtype=torch.float64)
    above = torch.tensor([[HIGH + 0.01, HIGH + 11.0]], dtype=torch.float64)
    slope_low = (values[0, 1] - values[0, 0]) / step
    slope_high = (values[0, -1] - values[0, -2]) / step
    torch.testing.assert_close(interpolate(grid, values, below),
                               values[0, 0] + slope_low * (below - LOW), rtol=0, atol=ATOL_INTERP)
    torch.testing.assert_close(interpolate(grid, values, above),
                               values[0, -1] + slope_high * (above - HIGH),
                               rtol=0, atol=ATOL_INTERP)


def test_interpolate_and_hermite_give_nan_for_nan_and_leave_the_other_entries_alone():
    """A diverged network feeds NaN into its activations: NaN out, not an index error."""
    grid = torch.linspace(LOW, HIGH, POINTS, dtype=torch.float64)
    values, slopes = (v[None] for v in _cubic(grid))
    finite = torch.tensor([[-1.3, 0.2, 2.9]], dtype=torch.float64)
    with_nan = torch.tensor([[-1.3, math.nan, 0.2, 2.9]], dtype=torch.float64)
    for spline in (lambda x: interpolate(grid, values, x), lambda x: hermite(grid, values, slopes, x)):
        out = spline(with_nan)
        assert torch.isnan(out[0, 1])
        torch.testing.assert_close(out[:, [0, 2, 3]], spline(finite), rtol=0, atol=0)


def test_interpolate_two_types_each_row_acts_on_its_own_block():
    """values (2, P): row t applies to x[..., t, :] only; here row t is the line a_t·x + c_t."""
    grid = torch.linspace(LOW, HIGH, POINTS, dtype=torch.float64)
    slopes, intercepts = torch.tensor([2.0, -0.5], dtype=torch.float64), torch.tensor(
        [1.0, 3.0], dtype=torch.float64)
    values = slopes[:, None] * grid + intercepts[:, None]
    x = torch.randn((4, 2, 6), generator=torch.Generator().manual_seed(2),
                    dtype=torch.float64) * 5
    y = interpolate(grid, values, x)
    assert y.shape == x.shape
    expected = slopes[:, None] * x + intercepts[:, None]
    torch.testing.assert_close(y, expected, rtol=0, atol=ATOL_LINEAR)
    # Swapping the rows swaps which block gets which function.
    swapped = interpolate(grid, values.flip(0), x)
    torch.testing.assert_close(swapped, slopes.flip(0)[:, None] * x + intercepts.flip(0)[:, None],
                               rtol=0, atol=ATOL_LINEAR)


def test_interpolate_gradient_is_segment_slope():
    grid = torch.linspace(LOW, HIGH, POINTS, dtype=torch.float64)
    values = torch.randn((1, POINTS), generator=torch.Generator().manual_seed(3),
                         dtype=torch.float64)
    step = (HIGH - LOW) / (POINTS - 1)
    x = torch.tensor([[LOW - 1.0, LOW + 0.3 * step, 0.1, HIGH - 0.2 * step, HIGH + 2.0]],
                     dtype=torch.float64, requires_grad=True)
    interpolate(grid, values, x).sum().backward()
    segment = ((x.detach() - LOW) / step).floor().clamp(0, POINTS - 2).long()[0]
    slopes = (values[0, segment + 1] - values[0, segment]) / step
    torch.testing.assert_close(x.grad[0], slopes, rtol=0, atol=ATOL_INTERP / step)


# --------------------------------------------------------------------------- tabulated activations


def test_tabulate_samples_function_on_uniform_grid():
    grid, values = tabulate(torch.sin, LOW, HIGH, POINTS)
    assert grid.dtype == values.dtype == torch.float64
    torch.testing.assert_close(grid, torch.linspace(LOW, HIGH, POINTS, dtype=torch.float64),
                               rtol=0, atol=0)
    torch.testing.assert_close(values, torch.sin(grid), rtol=0, atol=0)


def test_tabulate_learned_gives_every_type_in_float64():
    params32 = {k: v.float().requires_grad_() for k, v in phi64(n_types=3, seed=9).items()}
    grid, values = tabulate_learned(params32, "tanh", 0.2, LOW, HIGH, POINTS)
    assert grid.dtype == values.dtype == torch.float64 and values.shape == (3, POINTS)
    assert not values.requires_grad
    torch.testing.assert_close(grid, torch.linspace(LOW, HIGH, POINTS, dtype=torch.float64),
                               rtol=0, atol=0)
    params64 = {k: v.detach().double() for k, v in params32.items()}
    expected = learned(params64, grid.expand(3, -1), "tanh", 0.2)
    torch.testing.assert_close(values, expected, rtol=0, atol=ATOL_GRID)


@pytest.mark.parametrize("index", [0, 1])
def test_tabulated_learned_activation_reproduces_subnetwork_on_grid(index):
    params = phi64(seed=6)
    source = LearnedActivation(params, "sin", 0.2, index=index).double()
    table = TabulatedActivation.from_function(source, LOW, HIGH, POINTS)
    assert not table.values.requires_grad
    with torch.no_grad():
        expected = source(table.grid)
    torch.testing.assert_close(table(table.grid.clone()), expected, rtol=0, atol=ATOL_GRID)
    # Also from the functional `learned` on the stacked parameters.
    grid = table.grid
    stacked = learned(params, grid.expand(2, -1), "sin", 0.2)
    torch.testing.assert_close(table(grid.clone()), stacked[index], rtol=0, atol=ATOL_GRID)


def test_tabulated_is_exact_for_linear_functions_including_extrapolation():
    table = TabulatedActivation.from_function(lambda x: 2.5 * x - 1.0, LOW, HIGH, POINTS)
    x = torch.linspace(-20, 20, 401, dtype=torch.float64)
    torch.testing.assert_close(table(x), 2.5 * x - 1.0, rtol=0, atol=ATOL_LINEAR)
    # Any input shape is kept.
    x2 = x[:400].reshape(4, 10, 10)
    assert table(x2).shape == x2.shape


def test_tabulated_interpolates_linearly_between_grid_points():
    table = TabulatedActivation.from_function(torch.tanh, LOW, HIGH, POINTS)
    step = (HIGH - LOW) / (POINTS - 1)
    i, frac = 4, 0.37
    x = torch.tensor([LOW + (i + frac) * step], dtype=torch.float64)
    expected = (1 - frac) * math.tanh(LOW + i * step) + frac * math.tanh(LOW + (i + 1) * step)
    assert abs(float(table(x)) - expected) <= ATOL_INTERP


def test_tabulated_evaluates_in_input_dtype():
    table = TabulatedActivation.from_function(torch.sin, LOW, HIGH, POINTS)
    x32 = torch.linspace(-1, 1, 5, dtype=torch.float32)
    assert table(x32).dtype == torch.float32


@pytest.mark.parametrize("grid, values", [
    (torch.zeros(5), torch.zeros(4)),
    (torch.zeros(1), torch.zeros(1)),
    (torch.zeros(2, 5), torch.zeros(2, 5)),
])
def test_tabulated_rejects_bad_shapes(grid, values):
    with pytest.raises(ValueError):
        TabulatedActivation(grid, values)


def test_save_table_load_table_round_trip(tmp_path):
    grid = torch.linspace(LOW, HIGH, POINTS, dtype=torch.float64)
    values = torch.randn((3, POINTS), generator=torch.Generator().manual_seed(7),
                         dtype=torch.float64)
    path = tmp_path / "sub" / "table.npz"
    save_table(path, grid, values)
    assert path.exists() and [p.name for p in path.parent.iterdir()] == ["table.npz"]
    grid2, values2, _ = load_table(path)
    assert torch.equal(grid2, grid) and torch.equal(values2, values)
    assert values2.dtype == torch.float64


def test_tabulated_activation_save_load_round_trip(tmp_path):
    table = TabulatedActivation.from_function(torch.sin, LOW, HIGH, POINTS)
    path = tmp_path / "act.npz"
    table.save(path)
    grid, values, _ = load_table(path)
    assert values.shape == (1, POINTS)
    loaded = TabulatedActivation.load(path)
    assert torch.equal(loaded.grid, table.grid) and torch.equal(loaded.values, table.values)
    x = torch.linspace(-8, 8, 33, dtype=torch.float64)
    assert torch.equal(loaded(x), table(x))


def test_tabulated_activation_load_picks_type_index(tmp_path):
    grid = torch.linspace(LOW, HIGH, POINTS, dtype=torch.float64)
    values = torch.stack([torch.sin(grid), torch.tanh(grid)])
    path = tmp_path / "two.npz"
    save_table(path, grid, values)
    for index in range(2):
        loaded = TabulatedActivation.load(path, index=index)
        assert torch.equal(loaded.values, values[index])


# --------------------------------------------------------------------------- arms


@pytest.fixture
def two_type_table():
    params = phi64(seed=8)
    grid = torch.linspace(LOW, HIGH, POINTS, dtype=torch.float64)
    values = learned(params, grid.expand(2, -1), "sin", 0.2)
    return grid, values


@pytest.mark.parametrize("arm", ["relu", "tanh", "sin"])
def test_arm_standard_activation_has_one_type(arm, two_type_table):
    fn, n_types = arm_activation(arm, *two_type_table)
    assert n_types == 1
    x = torch.linspace(-5, 5, 11, dtype=torch.float64)
    assert torch.equal(fn(x), standard(arm)(x))


@pytest.mark.parametrize("k", [1, 2])
def test_arm_single_learned_type(k, two_type_table):
    grid, values = two_type_table
    fn, n_types = arm_activation(f"type{k}", grid, values)
    assert n_types == 1
    x = grid.clone().reshape(1, 1, -1)           # (B, T=1, n)
    torch.testing.assert_close(fn(x)[0, 0], values[k - 1], rtol=0, atol=ATOL_GRID)


def test_arm_mixed_applies_each_learned_type_to_its_block(two_type_table):
    grid, values = two_type_table
    fn, n_types = arm_activation("mixed", grid, values)
    assert n_types == 2
    x = grid.clone().expand(3, 2, -1)             # (B, T, n), every block sees the grid
    y = fn(x)
    for t in range(2):
        torch.testing.assert_close(y[:, t], values[t].expand(3, -1), rtol=0, atol=ATOL_GRID)


def test_arm_mixed_casts_table_to_input_dtype(two_type_table):
    fn, _ = arm_activation("mixed", *two_type_table)
    x = torch.zeros((2, 2, 3), dtype=torch.float32)
    assert fn(x).dtype == torch.float32


@pytest.mark.parametrize("arm", ["type0", "type3", "typeX", "type", "bogus", "Mixed", "type-1"])
def test_arm_rejects_bad_name(arm, two_type_table):
    with pytest.raises(ValueError, match="unknown arm"):
        arm_activation(arm, *two_type_table)


# Cubic Hermite interpolation: value error O(h⁴), slope error O(h³). Halving the spacing
# must shrink the errors by ≈16 and ≈8; we require a clear margin below those factors.
HERMITE_VALUE_ORDER_RATIO = 12.0
HERMITE_SLOPE_ORDER_RATIO = 6.0


def test_subnetwork_slope_is_the_autograd_derivative():
    from ldnn.activations import subnetwork_and_slope

    params = init_subnetworks(2, 7, torch.Generator().manual_seed(4), torch.float64)
    x = torch.linspace(-6, 6, 50, dtype=torch.float64).expand(2, -1).clone().requires_grad_()
    value, slope = subnetwork_and_slope(params, x)
    torch.testing.assert_close(value, subnetwork(params, x), rtol=0, atol=1e-13)
    (derivative,) = torch.autograd.grad(value.sum(), x)
    torch.testing.assert_close(slope, derivative, rtol=0, atol=1e-13)


def test_subnetwork_at_nodes_matches_closed_form_and_its_gradient():
    from ldnn.activations import subnetwork_and_slope, subnetwork_at_nodes

    names = ("w1", "b1", "w2", "b2")
    params = init_subnetworks(2, 7, torch.Generator().manual_seed(5), torch.float64)
    nodes = torch.linspace(-4, 4, 33, dtype=torch.float64).expand(2, -1)
    leaves = [params[k].clone().requires_grad_() for k in names]
    weights = torch.randn(2, 2, 33, generator=torch.Generator().manual_seed(6), dtype=torch.float64)

    def weighted(outputs):
        return sum((w * o).sum() for w, o in zip(weights, outputs))

    fast = subnetwork_at_nodes(dict(zip(names, leaves)), nodes)
    closed = subnetwork_and_slope(dict(zip(names, leaves)), nodes)
    for a, b in zip(fast, closed):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)
    torch.testing.assert_close(torch.autograd.grad(weighted(fast), leaves),
                               torch.autograd.grad(weighted(closed), leaves), rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(lambda *p: subnetwork_at_nodes(dict(zip(names, p)), nodes),
                                    tuple(leaves))


def test_spline_activations_converge_at_fourth_and_third_order():
    params = init_subnetworks(2, 50, torch.Generator().manual_seed(1), torch.float64)
    x = (torch.randn(200, 2, 50, generator=torch.Generator().manual_seed(2),
                     dtype=torch.float64) * 3).requires_grad_()
    exact = learned(params, x, "sin", 0.2)
    (exact_slope,) = torch.autograd.grad(exact.sum(), x)
    errors = []
    for spacing in (0.08, 0.04, 0.02):
        approx = SplineActivations(params, "sin", 0.2, spacing)(x)
        (slope,) = torch.autograd.grad(approx.sum(), x)
        errors.append((float((approx - exact).detach().abs().max()),
                       float((slope - exact_slope).abs().max())))
    for (v0, s0), (v1, s1) in zip(errors, errors[1:]):
        assert v0 / v1 > HERMITE_VALUE_ORDER_RATIO
        assert s0 / s1 > HERMITE_SLOPE_ORDER_RATIO
    assert errors[-1][0] < 1e-8


def test_spline_table_grows_to_cover_new_inputs_and_is_exact_at_zero_spacing():
    params = init_subnetworks(2, 5, torch.Generator().manual_seed(3), torch.float64)
    activation = SplineActivations(params, "sin", 0.2, 0.01)
    activation(torch.linspace(-1, 1, 10, dtype=torch.float64).expand(2, -1))
    first = activation.table
    activation(torch.linspace(-0.5, 0.5, 10, dtype=torch.float64).expand(2, -1))
    assert activation.table is first
    wide = torch.linspace(-30, 40, 10, dtype=torch.float64).expand(2, -1)
    torch.testing.assert_close(activation(wide), learned(params, wide, "sin", 0.2),
                               rtol=0, atol=1e-8)
    assert activation.table.covers(-30, 40) and activation.table.low <= first.low
    exact = SplineActivations(params, "sin", 0.2, 0)
    assert torch.equal(exact(wide), learned(params, wide, "sin", 0.2))


# --------------------------------------------------------------------------- Hermite tables


def _cubic(x):
    return 0.5 * x ** 3 - x ** 2 + 2 * x - 1, 1.5 * x ** 2 - 2 * x + 2


def test_hermite_is_exact_for_a_cubic_and_extrapolates_with_the_end_slopes():
    grid = torch.linspace(LOW, HIGH, POINTS, dtype=torch.float64)
    values, slopes = (v[None] for v in _cubic(grid))
    inside = torch.linspace(LOW, HIGH, 101, dtype=torch.float64)
    torch.testing.assert_close(hermite(grid, values, slopes, inside[None])[0], _cubic(inside)[0],
                               rtol=0, atol=ATOL_HERMITE)
    outside = torch.tensor([[-20.0, -3.5, 3.5, 20.0]], dtype=torch.float64)
    end_value, end_slope = _cubic(torch.tensor([LOW, LOW, HIGH, HIGH], dtype=torch.float64))
    expected = end_value + end_slope * (outside[0] - torch.tensor([LOW, LOW, HIGH, HIGH]))
    torch.testing.assert_close(hermite(grid, values, slopes, outside)[0], expected,
                               rtol=0, atol=ATOL_HERMITE)


def test_hermite_derivative_matches_the_slopes_at_every_node_and_beyond():
    grid = torch.linspace(LOW, HIGH, POINTS, dtype=torch.float64)
    values, slopes = torch.sin(grid)[None], torch.cos(grid)[None]
    # Just left and right of each node the derivative is the node's slope (C¹).
    for side in (-1e-9, 1e-9):
        x = (grid + side).reshape(1, -1).requires_grad_()
        hermite(grid, values, slopes, x).sum().backward()
        torch.testing.assert_close(x.grad[0], slopes[0], rtol=0, atol=1e-7)
    x = torch.tensor([[-9.0, 9.0]], dtype=torch.float64, requires_grad=True)
    hermite(grid, values, slopes, x).sum().backward()
    torch.testing.assert_close(x.grad[0], slopes[0, [0, -1]], rtol=0, atol=ATOL_HERMITE)


def test_learned_slopes_match_central_differences():
    params = phi64(seed=3)
    grid = torch.linspace(LOW, HIGH, POINTS, dtype=torch.float64)
    step = 1e-5
    ahead = learned(params, (grid + step).expand(2, -1), "sin", 0.2)
    behind = learned(params, (grid - step).expand(2, -1), "sin", 0.2)
    torch.testing.assert_close(learned_slopes(params, "sin", 0.2, grid),
                               (ahead - behind) / (2 * step), rtol=RTOL_SLOPE_FD, atol=0)


def test_arm_with_slopes_interpolates_smoothly_and_round_trips(tmp_path, two_type_table):
    grid, values = two_type_table
    slopes = learned_slopes(phi64(seed=8), "sin", 0.2, grid)
    path = tmp_path / "table.npz"
    save_table(path, grid, values, slopes)
    grid2, values2, slopes2 = load_table(path)
    assert torch.equal(slopes2, slopes) and torch.equal(values2, values)
    fn, n_types = arm_activation("mixed", grid2, values2, slopes2)
    assert n_types == 2
    x = grid.expand(2, -1)
    torch.testing.assert_close(fn(x), values, rtol=0, atol=ATOL_GRID)
    between = (grid[:-1] + grid[1:]) / 2
    exact = learned(phi64(seed=8), between.expand(2, -1), "sin", 0.2)
    # Hermite error on spacing 0.5 of these smooth sub-networks is far below linear's.
    linear, _ = arm_activation("mixed", grid, values)
    assert (fn(between.expand(2, -1)) - exact).abs().max() < \
        0.1 * (linear(between.expand(2, -1)) - exact).abs().max()
    fn1, n1 = arm_activation("type2", grid2, values2, slopes2)
    assert n1 == 1
    torch.testing.assert_close(fn1(grid.reshape(1, -1)), values[1:], rtol=0, atol=ATOL_GRID)


def test_spline_value_and_slope_has_the_derivatives_of_the_plain_spline():
    """The one-node value_and_slope against gradcheck and against autograd of the plain cubic."""
    params = init_subnetworks(2, 5, torch.Generator().manual_seed(6), torch.float64)
    activation = SplineActivations(params, "sin", 0.2, 0.05)
    x = torch.randn(7, 2, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    table = activation._table_for(x)
    coefficients = table.coefficients.detach().requires_grad_()
    x = x.requires_grad_()
    assert torch.autograd.gradcheck(lambda c, z: _spline_value_and_slope(table, c, z),
                                    (coefficients, x))
    value, slope = table.value_and_slope(x)
    plain = table(x)
    (plain_slope,) = torch.autograd.grad(plain.sum(), x, create_graph=True)
    torch.testing.assert_close(value, plain, rtol=0, atol=ATOL_INTERP)
    torch.testing.assert_close(slope, plain_slope, rtol=0, atol=1e-10)


def _spline_value_and_slope(table, coefficients, x):
    table.coefficients = coefficients
    table._cast.clear()
    return table.value_and_slope(x)

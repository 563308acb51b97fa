"""Typed MLPs: block assignment of neuron types, stacked seeds, the nn.Module wrapper."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ldnn.activations import TabulatedActivation
from ldnn.networks import (DiverseMLP, block_size, blockwise, forward, init_mlp,
                           layer_sizes)

# Batched (stacked) and single matrix products may round differently.
RTOL_STACK, ATOL_STACK = 1e-12, 1e-12
RTOL_MODULE, ATOL_MODULE = 1e-6, 1e-6       # DiverseMLP holds float32 parameters

WIDTH = 6


def constant_types(n_types: int):
    """Type t outputs the constant t + 1, whatever its input."""
    return blockwise([lambda x, c=t + 1: 0 * x + c for t in range(n_types)])


def identity_readout(width: int, n_in: int, dtype=torch.float64):
    """Parameters (W1=0, b1=0, W2=I, b2=0): the output is the hidden activity itself."""
    return (torch.zeros((width, n_in), dtype=dtype), torch.zeros(width, dtype=dtype),
            torch.eye(width, dtype=dtype), torch.zeros(width, dtype=dtype))


@pytest.mark.parametrize("width, n_types, expected", [(6, 1, 6), (6, 2, 3), (6, 3, 2),
                                                      (100, 2, 50), (1, 1, 1)])
def test_block_size(width, n_types, expected):
    assert block_size(width, n_types) == expected


@pytest.mark.parametrize("width, n_types", [(5, 2), (7, 3), (6, 4), (6, 0), (6, -1)])
def test_block_size_rejects_indivisible_width(width, n_types):
    with pytest.raises(ValueError, match="not divisible"):
        block_size(width, n_types)


def test_layer_sizes():
    assert layer_sizes(40, 100, 1, 10) == [40, 100, 10]
    assert layer_sizes(3, 8, 3, 2) == [3, 8, 8, 8, 2]


@pytest.mark.parametrize("n_types", [1, 2, 3])
def test_neuron_j_gets_type_j_over_block_size(n_types):
    params = identity_readout(WIDTH, 4)
    x = torch.randn((5, 4), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    hidden = forward(params, x, constant_types(n_types), n_types)
    block = WIDTH // n_types
    expected = torch.tensor([j // block + 1 for j in range(WIDTH)], dtype=torch.float64)
    assert torch.equal(hidden, expected.expand(5, -1))


@pytest.mark.parametrize("n_types", [1, 2, 3])
def test_block_types_with_real_functions(n_types):
    """Identity first layer: hidden neuron j is f_{type(j)}(x_j)."""
    fns = [torch.relu, torch.tanh, torch.sin][:n_types]
    params = (torch.eye(WIDTH, dtype=torch.float64), torch.zeros(WIDTH, dtype=torch.float64),
              torch.eye(WIDTH, dtype=torch.float64), torch.zeros(WIDTH, dtype=torch.float64))
    x = torch.randn((7, WIDTH), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = forward(params, x, blockwise(fns), n_types)
    block = WIDTH // n_types
    for j in range(WIDTH):
        assert torch.equal(out[:, j], fns[j // block](x[:, j]))


def test_forward_rejects_width_not_divisible_by_types():
    params = identity_readout(5, 3)
    with pytest.raises(ValueError, match="not divisible"):
        forward(params, torch.zeros((2, 3), dtype=torch.float64), constant_types(2), 2)


def test_forward_matches_explicit_two_hidden_layers_with_noise():
    sizes = (4, WIDTH, WIDTH, 3)
    params = init_mlp(sizes, torch.Generator().manual_seed(2), torch.float64)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn((5, 4), generator=gen, dtype=torch.float64)
    noise = [torch.randn(WIDTH, generator=gen, dtype=torch.float64) for _ in range(2)]
    fns = [torch.tanh, torch.sin]
    out = forward(params, x, blockwise(fns), 2, noise)

    def typed(h):
        return torch.cat([torch.tanh(h[:, :WIDTH // 2]), torch.sin(h[:, WIDTH // 2:])], dim=1)

    w1, b1, w2, b2, w3, b3 = params
    h1 = typed(x @ w1.T + b1) + noise[0]
    h2 = typed(h1 @ w2.T + b2) + noise[1]
    expected = h2 @ w3.T + b3
    torch.testing.assert_close(out, expected, rtol=RTOL_STACK, atol=ATOL_STACK)


def test_noise_is_added_after_activation():
    """With the zero activation and an identity read-out, the output is the noise itself."""
    noise = [torch.arange(WIDTH, dtype=torch.float64) / 10]
    out = forward(identity_readout(WIDTH, 2), torch.ones((3, 2), dtype=torch.float64),
                  blockwise([torch.zeros_like, torch.zeros_like]), 2, noise)
    assert torch.equal(out, noise[0].expand(3, -1))


def test_init_mlp_shapes_bounds_and_determinism():
    sizes = (40, 8, 8, 10)
    params = init_mlp(sizes, torch.Generator().manual_seed(0), torch.float64)
    assert [tuple(p.shape) for p in params] == [(8, 40), (8,), (8, 8), (8,), (10, 8), (10,)]
    for layer, fan_in in enumerate(sizes[:-1]):
        for p in params[2 * layer:2 * layer + 2]:
            assert p.dtype == torch.float64
            assert p.abs().max() <= fan_in ** -0.5
    again = init_mlp(sizes, torch.Generator().manual_seed(0), torch.float64)
    assert all(torch.equal(a, b) for a, b in zip(params, again))
    other = init_mlp(sizes, torch.Generator().manual_seed(1), torch.float64)
    assert not torch.equal(params[0], other[0])


@pytest.mark.parametrize("shared_input", [True, False])
def test_stacked_forward_equals_per_seed_forward(shared_input):
    sizes = (5, WIDTH, WIDTH, 3)
    seeds = [0, 1, 2]
    per_seed = [init_mlp(sizes, torch.Generator().manual_seed(s), torch.float64) for s in seeds]
    stacked = tuple(torch.stack(p) for p in zip(*per_seed))
    gen = torch.Generator().manual_seed(9)
    x = (torch.randn((4, 5), generator=gen, dtype=torch.float64) if shared_input
         else torch.randn((len(seeds), 4, 5), generator=gen, dtype=torch.float64))
    activation = blockwise([torch.tanh, torch.relu, torch.sin])
    out = forward(stacked, x, activation, 3)
    assert out.shape == (len(seeds), 4, 3)
    for i, params in enumerate(per_seed):
        xi = x if shared_input else x[i]
        torch.testing.assert_close(out[i], forward(params, xi, activation, 3),
                                   rtol=RTOL_STACK, atol=ATOL_STACK)


def test_diverse_mlp_matches_functional_forward():
    sizes = (5, WIDTH, 3)
    acts = [nn.Tanh(), nn.ReLU(), TabulatedActivation.from_function(torch.sin, -3, 3, 50)]
    model = DiverseMLP(sizes, acts, torch.Generator().manual_seed(4))
    reference = init_mlp(sizes, torch.Generator().manual_seed(4))
    assert all(torch.equal(p, r) for p, r in zip(model.params, reference))
    x = torch.randn((8, 5), generator=torch.Generator().manual_seed(5))
    y = model(x)
    assert y.shape == (8, 3)
    expected = forward(reference, x, blockwise([torch.tanh, torch.relu, acts[2]]), 3)
    torch.testing.assert_close(y, expected, rtol=RTOL_MODULE, atol=ATOL_MODULE)
    y.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.params)


def test_diverse_mlp_default_generator_is_deterministic():
    a = DiverseMLP((3, 4, 2), [nn.Tanh(), nn.Tanh()])
    b = DiverseMLP((3, 4, 2), [nn.Tanh(), nn.Tanh()])
    assert all(torch.equal(p, q) for p, q in zip(a.params, b.params))


def test_diverse_mlp_rejects_indivisible_width():
    with pytest.raises(ValueError, match="not divisible"):
        DiverseMLP((3, 5, 2), [nn.Tanh(), nn.ReLU()])

"""Integrators and dynamical systems against known answers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ldnn.physics import henon_heiles, van_der_pol
from ldnn.physics.integrators import accurate, fixed_step

ORDER_MARGIN = 0.15          # observed convergence order within ±0.15 of the theoretical one
ENERGY_DRIFT = 1e-8          # relative energy error of an accurate Hénon–Heiles orbit
VDP_PERIOD_2_7 = 8.47        # limit-cycle period for μ = 2.7 (issue statement, literature)
VDP_PERIOD_TOL = 0.01


def harmonic(state):
    return np.stack([state[..., 1], -state[..., 0]], -1)


@pytest.mark.parametrize("method, order", [("euler", 1), ("rk4", 4)])
def test_fixed_step_integrators_converge_at_their_order(method, order):
    y0, horizon = np.array([1.0, 0.0]), 2.0
    exact = np.array([np.cos(horizon), -np.sin(horizon)])
    errors = []
    for steps in (100, 200, 400):
        final = fixed_step(harmonic, y0, horizon / steps, steps, method)[-1]
        errors.append(np.linalg.norm(final - exact))
    observed = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(observed - order) < ORDER_MARGIN)


def test_fixed_step_works_on_torch_batches():
    y0 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    states = fixed_step(lambda s: torch.stack([s[..., 1], -s[..., 0]], -1), y0, 0.01, 100)
    assert len(states) == 101 and states[-1].shape == (2, 2)
    torch.testing.assert_close(states[-1][0], torch.tensor([np.cos(1.0), -np.sin(1.0)],
                                                           dtype=torch.float64))


@pytest.mark.parametrize("energy", [1 / 12, 0.16])
def test_henon_heiles_accurate_orbit_conserves_energy(energy):
    state = henon_heiles.sample_energy_shell(energy, 1, np.random.default_rng(0))[0]
    orbit = accurate(henon_heiles.field, state, np.linspace(0, 200, 4001))
    drift = np.abs(henon_heiles.energy(orbit) - energy).max() / energy
    assert drift <= ENERGY_DRIFT
    assert henon_heiles.inside_triangle(orbit[:, 0], orbit[:, 1]).all()


def test_energy_shell_sampler_hits_the_energy_inside_the_bounded_region():
    rng = np.random.default_rng(1)
    for energy in (1 / 12, 0.1, 1 / 6 - 1e-3):
        states = henon_heiles.sample_energy_shell(energy, 500, rng)
        assert states.shape == (500, 4)
        np.testing.assert_allclose(henon_heiles.energy(states), energy, rtol=1e-12)
        assert henon_heiles.inside_triangle(states[:, 0], states[:, 1]).all()
    with pytest.raises(ValueError, match="escape"):
        henon_heiles.sample_energy_shell(0.2, 1, rng)


def test_henon_heiles_field_is_hamiltons_equations():
    state = torch.tensor([0.1, -0.2, 0.3, 0.05], dtype=torch.float64, requires_grad=True)
    x, y, px, py = state
    h = 0.5 * (px ** 2 + py ** 2) + 0.5 * (x ** 2 + y ** 2) + x ** 2 * y - y ** 3 / 3
    (grad,) = torch.autograd.grad(h, state)
    expected = torch.cat([grad[2:], -grad[:2]])
    torch.testing.assert_close(henon_heiles.field(state.detach()), expected)


def test_van_der_pol_limit_cycle_period():
    assert abs(van_der_pol.limit_cycle_period(2.7) - VDP_PERIOD_2_7) < VDP_PERIOD_TOL


def test_hamiltonian_vector_field_of_an_analytic_energy_is_hamiltons_equations():
    from ldnn.hamiltonian import vector_field

    states = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def energy(z):
        x, y, px, py = z.unbind(-1)
        return 0.5 * (px ** 2 + py ** 2) + 0.5 * (x ** 2 + y ** 2) + x ** 2 * y - y ** 3 / 3

    torch.testing.assert_close(vector_field(energy, states), henon_heiles.field(states),
                               rtol=1e-14, atol=1e-14)
    harmonic_1d = vector_field(lambda z: 0.5 * (z ** 2).sum(-1, keepdim=True), states[..., :2])
    torch.testing.assert_close(harmonic_1d, torch.stack([states[..., 1], -states[..., 0]], -1))

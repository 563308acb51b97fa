"""Forecast errors of learned vector fields, against exact harmonic-oscillator orbits."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ldnn.forecast import forecast_error, horizon_steps

RK4_RMS = 1e-8              # RK4 with dt = 0.01 on the harmonic oscillator over t ≤ 2
EULER_ORDER_MARGIN = 0.2    # Euler's forecast error halves with dt, within this margin in order


def harmonic(state):
    return torch.stack([state[..., 1], -state[..., 0]], -1)


def circles(starts: np.ndarray, times: np.ndarray) -> torch.Tensor:
    """Exact orbits of ẍ = −x from (x0, v0): (M, K, 2)."""
    x0, v0 = starts[:, :1], starts[:, 1:]
    x = x0 * np.cos(times) + v0 * np.sin(times)
    v = -x0 * np.sin(times) + v0 * np.cos(times)
    return torch.from_numpy(np.stack([x, v], -1))


STARTS = np.array([[1.0, 0.0], [0.0, 2.0], [-0.5, 0.5]])


def test_exact_field_forecasts_the_orbit_with_rk4():
    times = np.linspace(0, 4, 401)
    error = forecast_error(harmonic, circles(STARTS, times), torch.from_numpy(times), 2.0, "rk4")
    assert error.shape == () and float(error) < RK4_RMS


def test_euler_forecast_error_is_first_order_in_the_step():
    errors = []
    for samples in (201, 401, 801):
        times = np.linspace(0, 2, samples)
        errors.append(float(forecast_error(harmonic, circles(STARTS, times),
                                           torch.from_numpy(times), 2.0, "euler")))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(orders - 1) < EULER_ORDER_MARGIN)


def test_stacked_fields_give_one_error_each_and_a_wrong_field_a_larger_one():
    times = np.linspace(0, 4, 401)
    orbits = circles(STARTS, times)
    speeds = torch.tensor([1.0, 1.3], dtype=torch.float64)[:, None, None]

    def stacked(state):                       # (S, M, 2): field of two "networks"
        return speeds * harmonic(state.expand(2, *state.shape[-2:]))

    error = forecast_error(stacked, orbits, torch.from_numpy(times), 2.0, "rk4")
    alone = forecast_error(lambda s: 1.3 * harmonic(s), orbits, torch.from_numpy(times), 2.0,
                           "rk4")
    assert error.shape == (2,) and float(error[0]) < RK4_RMS
    torch.testing.assert_close(error[1], alone, rtol=1e-12, atol=0)
    assert float(error[1]) > 0.1


def test_exploding_rollout_is_infinite_not_nan():
    times = torch.linspace(0, 4, 401, dtype=torch.float64)
    error = forecast_error(lambda s: 1e30 * s ** 3, circles(STARTS, times.numpy()), times, 4.0,
                           "euler")
    assert torch.isinf(error)


@pytest.mark.parametrize("horizon", [0.001, 5.0, -1.0])
def test_horizon_outside_the_trajectories_is_refused(horizon):
    with pytest.raises(ValueError, match="forecast horizon"):
        horizon_steps(torch.linspace(0, 4, 401), horizon)


ENERGY_RTOL = 1e-12          # Euler's exact energy growth, float64
RK4_DRIFT = 1e-9             # RK4 with dt = 0.01 keeps the oscillator's energy to ~dt⁴ per unit


def oscillator_energy(state):
    return 0.5 * (state[..., 0] ** 2 + state[..., 1] ** 2)


def test_energy_drift_of_euler_on_the_oscillator_is_its_known_growth():
    """Euler's step multiplies q² + p² by 1 + dt² exactly, so after n steps the relative
    energy error is (1 + dt²)ⁿ − 1 for every start; RK4 keeps it near 0."""
    from ldnn.forecast import energy_drift

    times = np.linspace(0, 4, 401)
    trajectories = circles(STARTS, times)
    dt, n = 0.01, 200
    drift = energy_drift(harmonic, trajectories, torch.from_numpy(times), 2.0,
                         oscillator_energy, method="euler")
    assert abs(float(drift) - ((1 + dt * dt) ** n - 1)) <= ENERGY_RTOL * ((1 + dt * dt) ** n - 1)
    exact = energy_drift(harmonic, trajectories, torch.from_numpy(times), 2.0, oscillator_energy)
    assert 0 <= float(exact) <= RK4_DRIFT


def test_energy_drift_per_stacked_field_and_inf_for_a_blown_up_rollout():
    from ldnn.forecast import energy_drift

    times = torch.linspace(0, 4, 401, dtype=torch.float64)
    trajectories = circles(STARTS, times.numpy())
    scales = torch.tensor([1.0, 1e200], dtype=torch.float64)[:, None, None]
    drift = energy_drift(lambda s: scales * harmonic(s), trajectories, times, 2.0,
                         oscillator_energy, method="euler")
    assert drift.shape == (2,) and np.isfinite(float(drift[0])) and drift[1] == torch.inf

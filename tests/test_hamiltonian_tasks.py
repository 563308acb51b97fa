"""Hamiltonian networks inside meta-learning and training: third derivatives, seeds."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import torch

from ldnn.activations import arm_activation, init_subnetworks
from ldnn.config import ActivationConfig
from ldnn.metalearn import MetaProblem, draw_inner_run, inner_loop, meta_gradient
from ldnn.tasks import Task, TaskData, mse, mse_metrics
from ldnn.training import train_seed, train_seeds

H_FD = 1e-4
RTOL_FD = 1e-6
RTOL_SPLINE = 1e-5
RTOL_VEC = 1e-10

HNN_TASK = Task(name="harmonic_hnn", n_in=2, n_out=1, loss=mse, metrics=mse_metrics,
                metric_names=("test_loss",), hamiltonian=True)


def harmonic_data() -> TaskData:
    """States (q, p) of a unit harmonic oscillator and their time derivatives (p, −q)."""
    generator = torch.Generator().manual_seed(0)
    states = torch.randn(50, 2, generator=generator, dtype=torch.float64)
    field = torch.stack([states[:, 1], -states[:, 0]], -1)
    return TaskData(states[:40], field[:40], states[40:], field[40:])


def test_unrolled_meta_gradient_through_a_hamiltonian_network(meta_cfg):
    data = harmonic_data()
    problem = MetaProblem(HNN_TASK, (2, 4, 1), "sin", 2, ActivationConfig(3, 0.2, -10, 10, 100))
    cfg = meta_cfg(batch_size=10, inner_epochs=1)
    phi = init_subnetworks(2, 3, torch.Generator().manual_seed(1), torch.float64)
    run = draw_inner_run(problem, 40, cfg, torch.Generator().manual_seed(2), torch.float64)
    loss, grads = meta_gradient(problem, phi, run, data, cfg)

    def outer(p):
        return float(inner_loop(problem, p, run, data, cfg, differentiable=False)[1].mean())

    for name, grad in grads.items():
        for i in range(grad.numel()):
            up = {k: v.clone() for k, v in phi.items()}
            down = {k: v.clone() for k, v in phi.items()}
            up[name].view(-1)[i] += H_FD
            down[name].view(-1)[i] -= H_FD
            fd = (outer(up) - outer(down)) / (2 * H_FD)
            assert abs(float(grad.view(-1)[i]) - fd) <= RTOL_FD * max(abs(fd), 1e-4)

    spline_loss, spline = meta_gradient(problem, phi, run, data,
                                        dataclasses.replace(cfg, spline_spacing=0.01))
    flat = torch.cat([g.reshape(-1) for g in grads.values()])
    flat_spline = torch.cat([g.reshape(-1) for g in spline.values()])
    assert torch.linalg.norm(flat_spline - flat) <= RTOL_SPLINE * torch.linalg.norm(flat)


def test_vectorised_hamiltonian_training_equals_loop(train_cfg):
    data = harmonic_data()
    grid = torch.linspace(-10, 10, 100, dtype=torch.float64)
    activation, n_types = arm_activation("mixed", grid, torch.stack([torch.sin(grid), torch.tanh(grid)]))
    cfg = train_cfg(batch_size=10, epochs=3)
    together = train_seeds(HNN_TASK, data, [2, 6, 1], activation, n_types, cfg, [0, 1, 2])
    for i, seed in enumerate([0, 1, 2]):
        alone = train_seed(HNN_TASK, data, [2, 6, 1], activation, n_types, cfg, seed)
        for key in ("test_loss", "train_loss"):
            torch.testing.assert_close(together[key][i], alone[key], rtol=RTOL_VEC, atol=0)
    assert (together["test_loss"] > 0).all() and not together["diverged"].any()


def test_henon_heiles_data_are_exact_states_and_fields_on_their_energy_shells(monkeypatch):
    from ldnn.physics import henon_heiles as hh
    from ldnn.tasks import henon_heiles

    energies = [1 / 12, 0.16]
    data = henon_heiles.generate(energies, train_orbits=2, test_orbits=1, duration=5.0,
                                 samples=30, seed=3)
    assert data["x_train"].shape == (2 * 2 * 30, 4) and data["x_test"].shape == (2 * 30, 4)
    assert data["test_trajectories"].shape == (2, 30, 4)
    np.testing.assert_allclose(data["y_train"], hh.field(data["x_train"].astype(np.float64)),
                               rtol=1e-6, atol=1e-6)
    for orbit, energy in zip(data["test_trajectories"], data["test_energies"]):
        assert np.max(np.abs(hh.energy(orbit) / energy - 1)) <= henon_heiles.MAX_ENERGY_ERROR
        assert hh.inside_triangle(orbit[:, 0], orbit[:, 1]).all()
    np.testing.assert_array_equal(data["test_energies"], energies)
    monkeypatch.setattr(henon_heiles, "MAX_ENERGY_ERROR", 0.0)
    with pytest.raises(RuntimeError, match="drifted in energy"):
        henon_heiles.generate([0.1], 1, 1, 5.0, 30, 0)


def test_training_on_trajectories_reports_forecast_errors_of_the_learned_field(train_cfg):
    """Data with test trajectories add each seed's Euler and RK4 forecast errors."""
    times = np.linspace(0, 2, 41)
    starts = np.random.default_rng(0).normal(size=(5, 2))
    orbits = np.stack([np.stack([q * np.cos(times) + p * np.sin(times),
                                 -q * np.sin(times) + p * np.cos(times)], -1)
                       for q, p in starts])
    states = torch.from_numpy(orbits.reshape(-1, 2))
    fields = torch.stack([states[:, 1], -states[:, 0]], -1)
    data = TaskData(states, fields, states, fields, torch.from_numpy(orbits),
                    torch.from_numpy(times))
    result = train_seeds(HNN_TASK, data, [2, 8, 1], torch.tanh, 1,
                         train_cfg(batch_size=10, epochs=5, forecast_horizon=1.0), [0, 1])
    for method in ("euler", "rk4"):
        errors = result[f"forecast_{method}"]
        assert errors.shape == (2,) and torch.isfinite(errors).all() and (errors > 0).all()

"""Hénon–Heiles orbits for a conventional network: (x, y, ẋ, ẏ) → (ẋ, ẏ, ẍ, ÿ), MSE (Eq. 5).

Orbits start on energy shells from regular (E = 1/12) to chaotic (just below the escape
energy 1/6), microcanonically sampled inside the bounded region, and are integrated to a
relative energy error ≤ 1e-8. Every sample is a state and its exact time derivative;
since p = q̇ here, the Hamiltonian network of `henon_heiles_hnn` learns from the same data.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ldnn.io import write_npz
from ldnn.physics import henon_heiles
from ldnn.physics.integrators import accurate
from ldnn.tasks import Task, mse, mse_metrics

MAX_ENERGY_ERROR = 1e-8  # relative energy drift allowed along any generated orbit


def orbit(start: np.ndarray, times: np.ndarray) -> np.ndarray:
    """The orbit from `start` (4,) sampled at `times` (N,): (N, 4); checks energy drift."""
    states = accurate(henon_heiles.field, start, times)
    energy = henon_heiles.energy(states)
    drift = float(np.max(np.abs(energy / energy[0] - 1)))
    if drift > MAX_ENERGY_ERROR:
        raise RuntimeError(f"Hénon–Heiles orbit from {start} drifted in energy by {drift:.1e}")
    return states


def generate(energies: list[float], train_orbits: int, test_orbits: int, duration: float,
             samples: int, seed: int) -> dict[str, np.ndarray]:
    """x_train (train_orbits·E·samples, 4) orbit by orbit, energies interleaved, y_train,
    x_test, y_test (float32);
    test_trajectories (E·test_orbits, samples, 4) float64, test_energies, times (samples,)."""
    rng = np.random.default_rng(seed)
    times = np.linspace(0.0, duration, samples)
    by_energy, test, test_energies = [], [], []
    for energy in energies:
        starts = henon_heiles.sample_energy_shell(energy, train_orbits + test_orbits, rng)
        orbits = [orbit(start, times) for start in starts]
        by_energy.append(orbits[:train_orbits])
        test += orbits[train_orbits:]
        test_energies += [energy] * test_orbits
    # Training orbits interleaved across energies, so that the last rows (a validation
    # split) are whole orbits of every energy.
    train = np.stack([orbits[i] for i in range(train_orbits) for orbits in by_energy])
    test = np.stack(test)
    return {"x_train": train.reshape(-1, 4).astype(np.float32),
            "y_train": henon_heiles.field(train).reshape(-1, 4).astype(np.float32),
            "x_test": test.reshape(-1, 4).astype(np.float32),
            "y_test": henon_heiles.field(test).reshape(-1, 4).astype(np.float32),
            "test_trajectories": test, "test_energies": np.asarray(test_energies),
            "times": times}


def write(path: str | Path, **settings) -> None:
    write_npz(path, **generate(**settings))


TASK = Task(name="henon_heiles", n_in=4, n_out=4, loss=mse, metrics=mse_metrics,
            metric_names=("test_loss",), exact_degree=2, energy=henon_heiles.energy)

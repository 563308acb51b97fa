"""Forecasting the van der Pol oscillator: (x, ẋ) → (ẋ, ẍ), mean squared error.

Trajectories start from initial conditions spread uniformly over a box of the phase
plane and are sampled at uniform times; every sample is an input state and its exact
time derivative. Held-out trajectories form the test set and are kept whole for
forecasting and plots.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ldnn.io import write_npz
from ldnn.physics import van_der_pol
from ldnn.physics.integrators import accurate
from ldnn.tasks import Task, mse, mse_metrics


def generate(mu: float, train_trajectories: int, test_trajectories: int, duration: float,
             samples: int, x_max: float, v_max: float, seed: int) -> dict[str, np.ndarray]:
    """x_train (N·samples, 2), y_train, x_test, y_test (float32), test_trajectories
    (M, samples, 2) float64, times (samples,)."""
    rng = np.random.default_rng(seed)
    n = train_trajectories + test_trajectories
    starts = rng.uniform([-x_max, -v_max], [x_max, v_max], (n, 2))
    times = np.linspace(0.0, duration, samples)
    orbits = np.stack([accurate(lambda s: van_der_pol.field(s, mu), start, times)
                       for start in starts])
    rates = van_der_pol.field(orbits, mu)
    split = train_trajectories
    return {"x_train": orbits[:split].reshape(-1, 2).astype(np.float32),
            "y_train": rates[:split].reshape(-1, 2).astype(np.float32),
            "x_test": orbits[split:].reshape(-1, 2).astype(np.float32),
            "y_test": rates[split:].reshape(-1, 2).astype(np.float32),
            "test_trajectories": orbits[split:], "times": times}


def write(path: str | Path, **settings) -> None:
    write_npz(path, **generate(**settings))


TASK = Task(name="van_der_pol", n_in=2, n_out=2, loss=mse, metrics=mse_metrics,
            metric_names=("test_loss",), exact_degree=3)

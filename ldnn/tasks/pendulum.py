"""The pendulum clock for a Hamiltonian network: (θ, θ̇) → H, whose field (∂H/∂θ̇, −∂H/∂θ)
is fitted to the measured (θ̇, θ̈) by MSE. The series is split chronologically: the first
part trains, the rest is the test set and one held-out trajectory for forecasts."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ldnn.io import write_npz
from ldnn.tasks import Task, mse, mse_metrics


def split(angles: pd.DataFrame, train_fraction: float) -> dict[str, np.ndarray]:
    """x (θ, θ̇), y (θ̇, θ̈) of the first `train_fraction` of the rows and of the rest;
    the rest also as test_trajectories (1, K, 2) with times (K,) from 0."""
    states = angles[["theta", "theta_dot"]].to_numpy()
    rates = angles[["theta_dot", "theta_ddot"]].to_numpy()
    cut = int(round(train_fraction * len(angles)))
    times = angles.time.to_numpy()[cut:]
    return {"x_train": states[:cut].astype(np.float32), "y_train": rates[:cut].astype(np.float32),
            "x_test": states[cut:].astype(np.float32), "y_test": rates[cut:].astype(np.float32),
            "test_trajectories": states[None, cut:], "times": times - times[0]}


def write(path: str | Path, angles: str | Path, train_fraction: float) -> None:
    write_npz(path, **split(pd.read_csv(angles), train_fraction))


TASK = Task(name="pendulum", n_in=2, n_out=1, loss=mse, metrics=mse_metrics,
            metric_names=("test_loss",), hamiltonian=True)

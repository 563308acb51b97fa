"""Forecasts with a learned vector field: roll it out from the first state of each held-out
trajectory and compare with the true orbit over a fixed horizon."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ldnn.physics.integrators import Field, fixed_step

METHODS = ("euler", "rk4")  # the paper's update, and classical Runge–Kutta


def horizon_steps(times: Tensor, horizon: float) -> int:
    """Sample steps covering `horizon` time units on the uniform `times` (K,)."""
    dt = float(times[1] - times[0])
    steps = round(horizon / dt)
    if not 1 <= steps <= times.shape[0] - 1:
        raise ValueError(f"forecast horizon {horizon} is not within the trajectories' "
                         f"{float(times[-1] - times[0])} time units (step {dt})")
    return steps


def rollout(field: Field, trajectories: Tensor, times: Tensor, horizon: float, method: str,
            dtype: torch.dtype = torch.float64) -> Tensor:
    """States (..., M, steps + 1, d) of the field's rollouts over the horizon from the first
    state of each trajectory (M, K, d) sampled at uniform `times` (K,), in `dtype`; field:
    states (..., M, d) → derivatives (..., M, d), e.g. S stacked networks."""
    steps = horizon_steps(times, horizon)
    dt = float(times[1] - times[0])
    with torch.no_grad():
        start = trajectories[:, 0].to(dtype)
        states = fixed_step(lambda y: field(y).detach(), start, dt, steps, method)
        return torch.stack(torch.broadcast_tensors(*states), dim=-2)


def forecast_error(field: Field, trajectories: Tensor, times: Tensor, horizon: float,
                   method: str, dtype: torch.dtype = torch.float64) -> Tensor:
    """RMS state error of the rollouts (see `rollout`) over the horizon against the true
    trajectories, per leading index of the field: (...); a rollout that leaves the
    floating-point range gives inf."""
    states = rollout(field, trajectories, times, horizon, method, dtype)
    error = (states.double() - trajectories[:, :states.shape[-2]]) ** 2
    rms = error.mean((-3, -2, -1)).sqrt()
    return torch.where(torch.isfinite(rms), rms, torch.inf)


def energy_drift(field: Field, trajectories: Tensor, times: Tensor, horizon: float,
                 energy: Callable[[Tensor], Tensor], method: str = "rk4",
                 dtype: torch.dtype = torch.float64) -> Tensor:
    """Relative error of the true energy at the horizon, |E(x_T) − E(x_0)| / |E(x_0)|, of
    each rollout (see `rollout`) from x_0, the median over the M rollouts: (...); inf where
    a rollout left the floating-point range."""
    states = rollout(field, trajectories, times, horizon, method, dtype).double()
    start = energy(trajectories[:, 0])
    drift = (energy(states[..., -1, :]) - start).abs() / start.abs()
    drift = torch.where(torch.isfinite(drift), drift, torch.inf)
    return drift.median(-1).values

"""Forecasts with a learned vector field: roll it out from the first state of each held-out
trajectory and compare with the true orbit over a fixed horizon."""
from __future__ import annotations

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


def forecast_error(field: Field, trajectories: Tensor, times: Tensor, horizon: float,
                   method: str, dtype: torch.dtype = torch.float64) -> Tensor:
    """RMS state error of the rollout over the horizon, per leading index of the field.

    field: states (..., M, d) → derivatives (..., M, d), e.g. S stacked networks;
    trajectories (M, K, d) sampled at uniform `times` (K,). Returns (...); a rollout that
    leaves the floating-point range gives inf. The rollout runs in `dtype`.
    """
    steps = horizon_steps(times, horizon)
    dt = float(times[1] - times[0])
    with torch.no_grad():
        start = trajectories[:, 0].to(dtype)
        states = fixed_step(lambda y: field(y).detach(), start, dt, steps, method)
        rollout = torch.stack(torch.broadcast_tensors(*states), dim=-2)
    error = (rollout.double() - trajectories[:, :steps + 1]) ** 2
    rms = error.mean((-3, -2, -1)).sqrt()
    return torch.where(torch.isfinite(rms), rms, torch.inf)


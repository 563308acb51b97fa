"""Time integrators. `euler` and `rk4` take fixed steps of any vector field on arrays of
states (..., d), NumPy or torch; `accurate` integrates a NumPy field to tight tolerance."""
from __future__ import annotations

from typing import Callable

import numpy as np

Field = Callable  # state (..., d) → time derivative (..., d)


def euler_step(field: Field, y, dt: float):
    return y + dt * field(y)


def rk4_step(field: Field, y, dt: float):
    k1 = field(y)
    k2 = field(y + 0.5 * dt * k1)
    k3 = field(y + 0.5 * dt * k2)
    k4 = field(y + dt * k3)
    return y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


STEPS = {"euler": euler_step, "rk4": rk4_step}


def fixed_step(field: Field, y0, dt: float, steps: int, method: str = "rk4") -> list:
    """States at t = 0, dt, …, steps·dt: a list of steps + 1 arrays shaped like y0."""
    step = STEPS[method]
    states = [y0]
    for _ in range(steps):
        states.append(step(field, states[-1], dt))
    return states


def accurate(field: Field, y0: np.ndarray, times: np.ndarray, rtol: float = 1e-12,
             atol: float = 1e-12) -> np.ndarray:
    """Solution of y' = field(y) from y0 (d,) sampled at `times` (N,): (N, d), DOP853."""
    from scipy.integrate import solve_ivp  # here: SciPy's import costs every training job 0.4 s

    solution = solve_ivp(lambda _, y: field(y), (times[0], times[-1]), y0, method="DOP853",
                         t_eval=times, rtol=rtol, atol=atol)
    if not solution.success:
        raise RuntimeError(f"integration failed: {solution.message}")
    return solution.y.T

"""The van der Pol oscillator ẍ − μ(1 − x²)ẋ + x = 0 as a first-order system in (x, ẋ)."""
from __future__ import annotations

import numpy as np

from ldnn.physics import stack_like


def field(state, mu: float):
    """(x, ẋ) (..., 2) → (ẋ, ẍ) (..., 2); NumPy or torch."""
    x, v = state[..., 0], state[..., 1]
    acceleration = mu * (1 - x * x) * v - x
    return stack_like(state, [v, acceleration])


def limit_cycle_period(mu: float, transient: float = 100.0, span: float = 100.0,
                       dt: float = 1e-3) -> float:
    """Period of the limit cycle: mean spacing of upward zero crossings of x, after a transient."""
    from ldnn.physics.integrators import accurate

    times = np.arange(0.0, transient + span, dt)
    x = accurate(lambda s: field(s, mu), np.array([2.0, 0.0]), times)[:, 0]
    after = times > transient
    i = np.flatnonzero(after[1:] & (x[:-1] < 0) & (x[1:] >= 0))
    crossings = times[i] - x[i] * dt / (x[i + 1] - x[i])
    return float(np.diff(crossings).mean())

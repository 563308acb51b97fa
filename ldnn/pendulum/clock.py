"""A wall pendulum clock: a compound pendulum θ̈ = −ω₀² sin θ − γ θ̇, kept swinging by its
escapement, which pushes the pendulum each time it passes the vertical.

In steady state the push replaces what damping takes in half a swing. For a swing of
amplitude A the pendulum passes the vertical at θ̇ ≈ A ω₀ and damping dissipates
γ A² ω₀² T/4 per half period T/2 (per unit inertia), so a push Δθ̇ = γ A π / 2 holds A.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Clock:
    """period: small-swing period (s); amplitude: steady swing (rad); damping γ (1/s)."""
    period: float = 2.03
    amplitude: float = 0.1
    damping: float = 0.05

    @property
    def omega(self) -> float:
        return 2 * np.pi / self.period

    @property
    def push(self) -> float:
        """Escapement impulse Δθ̇ per passage of the vertical (rad/s)."""
        return self.damping * self.amplitude * np.pi / 2

    def acceleration(self, theta, theta_dot):
        return -self.omega ** 2 * np.sin(theta) - self.damping * theta_dot


def simulate(clock: Clock, duration: float, step: float, phase: float = 0.0) -> np.ndarray:
    """θ at times 0, step, …, ≤ duration: (N,). RK4 between pushes; a push is applied at
    the moment θ changes sign (located by linear interpolation within the step).

    Starts at θ = A cos(phase), θ̇ = −A ω₀ sin(phase).
    """
    n = int(np.floor(duration / step + 1e-9)) + 1
    theta = np.empty(n)
    state = np.array([clock.amplitude * np.cos(phase),
                      -clock.amplitude * clock.omega * np.sin(phase)])

    def rate(s):
        return np.array([s[1], clock.acceleration(s[0], s[1])])

    def rk4(s, h):
        k1 = rate(s)
        k2 = rate(s + h / 2 * k1)
        k3 = rate(s + h / 2 * k2)
        k4 = rate(s + h * k3)
        return s + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

    theta[0] = state[0]
    for i in range(1, n):
        new = rk4(state, step)
        if state[0] * new[0] < 0:
            fraction = state[0] / (state[0] - new[0])
            middle = rk4(state, fraction * step)
            middle[1] += np.sign(middle[1]) * clock.push
            new = rk4(middle, (1 - fraction) * step)
        state = new
        theta[i] = state[0]
    return theta

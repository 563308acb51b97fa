"""The Hénon–Heiles system H = ½(p_x² + p_y²) + ½(x² + y²) + x²y − y³/3.

Orbits stay bounded for energies below the escape energy 1/6, inside the triangle whose
corners are the three saddle points (0, 1) and (±√3/2, −1/2).
"""
from __future__ import annotations

import numpy as np

from ldnn.physics import stack_like

ESCAPE_ENERGY = 1.0 / 6.0


def potential(x, y):
    return 0.5 * (x * x + y * y) + x * x * y - y ** 3 / 3


def energy(state):
    """(x, y, p_x, p_y) (..., 4) → H (...); NumPy or torch."""
    x, y, px, py = (state[..., i] for i in range(4))
    return 0.5 * (px * px + py * py) + potential(x, y)


def field(state):
    """Hamilton's equations: (x, y, p_x, p_y) (..., 4) → (ẋ, ẏ, ṗ_x, ṗ_y); NumPy or torch."""
    x, y, px, py = (state[..., i] for i in range(4))
    return stack_like(state, [px, py, -x - 2 * x * y, -y - x * x + y * y])


def inside_triangle(x, y):
    """Whether (x, y) lies inside the triangle bounded by the three saddle points."""
    return (y > -0.5) & (y < 1 - np.sqrt(3) * x) & (y < 1 + np.sqrt(3) * x)


def sample_energy_shell(energy_level: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """n states (n, 4) with H = energy_level exactly, microcanonically distributed.

    On a 2-degree-of-freedom energy shell the microcanonical density of positions is
    uniform over the allowed region {V < E}, and the momentum direction is uniform; so
    positions are drawn uniformly in the bounded component and |p| = √(2(E − V)).
    """
    if not 0 < energy_level < ESCAPE_ENERGY:
        raise ValueError(f"energy {energy_level} is not in (0, 1/6): orbits would escape")
    states = []
    while len(states) < n:
        x = rng.uniform(-np.sqrt(3) / 2, np.sqrt(3) / 2, 4 * n)
        y = rng.uniform(-0.5, 1.0, 4 * n)
        keep = inside_triangle(x, y) & (potential(x, y) < energy_level)
        for xi, yi in zip(x[keep], y[keep]):
            speed = np.sqrt(2 * (energy_level - potential(xi, yi)))
            angle = rng.uniform(0, 2 * np.pi)
            states.append([xi, yi, speed * np.cos(angle), speed * np.sin(angle)])
    return np.asarray(states[:n])

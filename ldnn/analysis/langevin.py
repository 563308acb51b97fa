"""Noisy gradient descent as Langevin dynamics (Eq. 8): x ← x − η∇L(x) + √(2ηT) ξ, ξ ~ N(0, I).

Its stationary density is ∝ exp(−L/T) as η → 0, so the walker spends its time in minima
by their width as well as their depth: noise pushes it out of sharp minima into flat ones.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

Gradient = Callable[[np.ndarray], np.ndarray]


def langevin(gradient: Gradient, start: np.ndarray, step: float, temperature: float,
             steps: int, walkers: int, rng: np.random.Generator) -> np.ndarray:
    """Paths of `walkers` independent noise realisations from `start` (d,): (walkers, steps + 1, d)."""
    x = np.repeat(np.asarray(start, float)[None], walkers, 0)
    paths = [x]
    scale = np.sqrt(2 * step * temperature)
    for _ in range(steps):
        x = x - step * gradient(x) + scale * rng.standard_normal(x.shape)
        paths.append(x)
    return np.stack(paths, 1)


def two_wells(sharp=(-1.0, 0.0), flat=(1.2, 0.0), sharp_width=0.15, flat_width=0.6,
              sharp_depth=1.0, flat_depth=1.0, confinement=0.2):
    """A landscape with a sharp and a flat Gaussian minimum (equally deep by default) in a
    harmonic confinement: L(x) (..., 2) → (...), and its gradient (..., 2) → (..., 2)."""
    centres = np.array([sharp, flat])
    widths, depths = np.array([sharp_width, flat_width]), np.array([sharp_depth, flat_depth])

    def wells(x):
        offset = x[..., None, :] - centres                      # (..., 2 wells, 2)
        return offset, depths * np.exp(-0.5 * (offset ** 2).sum(-1) / widths ** 2)

    def loss(x):
        _, heights = wells(x)
        return -heights.sum(-1) + confinement * (x ** 2).sum(-1)

    def gradient(x):
        offset, heights = wells(x)
        return (heights[..., None] * offset / widths[:, None] ** 2).sum(-2) + 2 * confinement * x

    return loss, gradient

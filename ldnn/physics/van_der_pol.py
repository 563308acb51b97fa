"""The van der Pol oscillator ẍ − μ(1 − x²)ẋ + x = 0 as a first-order system in (x, ẋ)."""
from __future__ import annotations

import numpy as np


def field(state, mu: float):
    """(x, ẋ) (..., 2) → (ẋ, ẍ) (..., 2); NumPy or torch."""
    x, v = state[..., 0], state[..., 1]
    acceleration = mu * (1 - x * x) * v - x
    stack = np.stack if isinstance(state, np.ndarray) else __import__("torch").stack
    return stack([v, acceleration], -1)

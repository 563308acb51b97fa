"""Dynamical systems and integrators for the physics tasks."""
import numpy as np
import torch


def stack_like(like, parts: list, axis: int = -1):
    """np.stack or torch.stack, whichever matches `like`: fields work on both."""
    return np.stack(parts, axis) if isinstance(like, np.ndarray) else torch.stack(parts, axis)

"""Fig. 9: noisy descent on a landscape with a sharp and a flat minimum."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ldnn.plotting.style import time_coloured_line


def draw(loss, paths: np.ndarray, step: float):
    """loss: (..., 2) → (...); paths (W, K, 2) of W walkers from one start."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5), layout="constrained")
    low, high = paths.min((0, 1)) - 0.5, paths.max((0, 1)) + 0.5
    xx, yy = np.meshgrid(np.linspace(low[0], high[0], 300), np.linspace(low[1], high[1], 300))
    surface = ax.contourf(xx, yy, loss(np.stack([xx, yy], -1)), levels=30, cmap="Greys_r")
    fig.colorbar(surface, ax=ax, label="L(x)", location="left", shrink=0.8)
    times = np.arange(paths.shape[1]) * step
    stride = max(1, paths.shape[1] // 2000)
    for path in paths:
        line = time_coloured_line(ax, times[::stride], path[::stride])
        line.set_linewidth(0.6)
    ax.plot(*paths[0, 0], "k*", ms=12)
    fig.colorbar(line, ax=ax, label="time", shrink=0.8)
    ax.set_xlim(low[0], high[0])
    ax.set_ylim(low[1], high[1])
    ax.set_aspect("equal")
    ax.set_title(f"{paths.shape[0]} noisy descents from the sharp minimum (★)")
    return fig

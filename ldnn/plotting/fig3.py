"""Fig. 3: MNIST-1D digit construction, activation evolution, test accuracy per arm."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ldnn.plotting.style import box_by_arm, time_colors


def draw(construction: list[tuple[str, np.ndarray]], history: dict[str, np.ndarray],
         results: pd.DataFrame, arms: Sequence[str], curves: int):
    """construction: [(step, signal)]; history: grid (P,), snapshot_steps (K,), snapshots (K, T, P)."""
    snapshots, steps = history["snapshots"], history["snapshot_steps"]
    n_types = snapshots.shape[1]
    fig = plt.figure(figsize=(11, 3.6), layout="constrained")
    grid = fig.add_gridspec(n_types, 3, width_ratios=[1, 1.1, 1.2])

    ax = fig.add_subplot(grid[:, 0])
    for row, (name, signal) in enumerate(construction):
        offset = -1.6 * row
        ax.plot(np.linspace(0, 1, len(signal)), signal + offset, color="k", lw=1)
        ax.text(1.02, offset, name, va="center", fontsize=8)
    ax.set_axis_off()
    ax.set_title("MNIST-1D digit construction")

    chosen = np.unique(np.linspace(0, len(steps) - 1, min(curves, len(steps))).round().astype(int))
    colors = time_colors(len(chosen))
    for t in range(n_types):
        ax = fig.add_subplot(grid[t, 1])
        for color, k in zip(colors, chosen):
            ax.plot(history["grid"], snapshots[k, t], color=color, lw=1)
        ax.set_ylabel(f"type {t + 1}  σ(x)")
        if t == n_types - 1:
            ax.set_xlabel("x")
    scalar = plt.cm.ScalarMappable(cmap=plt.cm.rainbow,
                                   norm=plt.Normalize(steps[chosen[0]], steps[chosen[-1]]))
    fig.colorbar(scalar, ax=fig.axes[1:], label="outer step", location="right", shrink=0.8)

    ax = fig.add_subplot(grid[:, 2])
    box_by_arm(ax, results, arms, "test_accuracy", "test accuracy")
    ax.set_title(f"MNIST-1D, width {int(results.width.iloc[0])}")
    return fig

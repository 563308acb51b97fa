"""Fig. 3: MNIST-1D digit construction, activation evolution, test accuracy per arm."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ldnn.plotting.style import activation_evolution, box_by_arm, width_of


def draw(construction: list[tuple[str, np.ndarray]], history: dict[str, np.ndarray],
         results: pd.DataFrame, arms: Sequence[str], curves: int):
    """construction: [(step, signal)]; history: grid (P,), snapshot_steps (K,), snapshots (K, T, P)."""
    n_types = history["snapshots"].shape[1]
    fig = plt.figure(figsize=(11, 3.6), layout="constrained")
    grid = fig.add_gridspec(n_types, 3, width_ratios=[1, 1.1, 1.2])

    ax = fig.add_subplot(grid[:, 0])
    for row, (name, signal) in enumerate(construction):
        offset = -1.6 * row
        ax.plot(np.linspace(0, 1, len(signal)), signal + offset, color="k", lw=1)
        ax.text(1.02, offset, name, va="center", fontsize=8)
    ax.set_axis_off()
    ax.set_title("MNIST-1D digit construction")

    activation_evolution(fig, [grid[t, 1] for t in range(n_types)], history, curves)

    ax = fig.add_subplot(grid[:, 2])
    box_by_arm(ax, results, arms, "test_accuracy", "test accuracy")
    ax.set_title(f"MNIST-1D, width {width_of(results)}")
    return fig

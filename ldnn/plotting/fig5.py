"""Fig. 5: van der Pol limit cycle, activation evolution, test loss per arm."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ldnn.plotting.style import (activation_evolution, box_by_arm, time_coloured_line,
                                 width_of)


def draw(times: np.ndarray, orbit: np.ndarray, history: dict[str, np.ndarray],
         results: pd.DataFrame, arms: Sequence[str], curves: int):
    """times (L,), orbit (L, 2) of (x, ẋ); history as in fig3; results: the study's table."""
    n_types = history["snapshots"].shape[1]
    fig = plt.figure(figsize=(11, 3.6), layout="constrained")
    grid = fig.add_gridspec(n_types, 3, width_ratios=[1, 1.1, 1.2])

    ax = fig.add_subplot(grid[:, 0])
    line = time_coloured_line(ax, times, orbit)
    ax.set_xlabel("x")
    ax.set_ylabel("ẋ")
    ax.set_title("van der Pol orbit")
    fig.colorbar(line, ax=ax, label="time", location="bottom", shrink=0.8)

    activation_evolution(fig, [grid[t, 1] for t in range(n_types)], history, curves)

    ax = fig.add_subplot(grid[:, 2])
    box_by_arm(ax, results, arms, "test_loss", "test MSE of (ẋ, ẍ)")
    ax.set_yscale("log")
    ax.set_title(f"van der Pol, width {width_of(results)}")
    return fig

"""Fig. 6: Hénon–Heiles orbits, NN and HNN activation evolution, test loss per arm."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ldnn.plotting.style import (activation_evolution, box_by_arm, time_coloured_line,
                                 width_of)


def draw(times: np.ndarray, orbits: Sequence[np.ndarray], energies: Sequence[float],
         histories: dict[str, dict[str, np.ndarray]], results: dict[str, pd.DataFrame],
         arms: Sequence[str], curves: int):
    """times (L,); orbits: two (L, 4) states (x, y, p_x, p_y) at `energies` (regular,
    chaotic); histories and results keyed by network kind ("NN", "HNN") as in fig5."""
    fig = plt.figure(figsize=(12, 7.2), layout="constrained")
    rows = fig.add_gridspec(2, 1, height_ratios=[1, 1.1])
    top = rows[0].subgridspec(1, 2)
    n_types = max(h["snapshots"].shape[1] for h in histories.values())
    bottom = rows[1].subgridspec(n_types, 4, width_ratios=[0.9, 0.9, 1.5, 1.5])

    for k, (orbit, energy, kind) in enumerate(zip(orbits, energies, ["regular", "chaotic"])):
        ax = fig.add_subplot(top[0, k])
        line = time_coloured_line(ax, times, orbit[:, :2])
        ax.set_aspect("equal")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_title(f"E = {energy:.4g} ({kind})")
        fig.colorbar(line, ax=ax, label="time", shrink=0.8)

    box_axes = []
    for k, (name, history) in enumerate(histories.items()):
        cells = [bottom[t, k] for t in range(history["snapshots"].shape[1])]
        activation_evolution(fig, cells, history, curves)[0].set_title(f"{name} activations")
        ax = fig.add_subplot(bottom[:, 2 + k], sharey=box_axes[0] if box_axes else None)
        box_by_arm(ax, results[name], arms, "test_loss",
                   "" if box_axes else "test MSE of the vector field")
        ax.set_yscale("log")
        ax.set_title(f"{name}, width {width_of(results[name])}")
        box_axes.append(ax)
    return fig

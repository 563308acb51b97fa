"""Fig. 4: test accuracy against hidden width, one box per (width, arm)."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ldnn.plotting.style import arm_label, baseline_lines, trained


def draw(results: pd.DataFrame, arms: Sequence[str]):
    """results: a study's table with several widths (and its baselines)."""
    networks = trained(results)
    widths = sorted(networks.width.unique())
    fig, ax = plt.subplots(figsize=(11, 4), layout="constrained")
    colours = plt.cm.tab10(np.arange(len(arms)))
    span = 0.8 / len(arms)
    for k, (arm, colour) in enumerate(zip(arms, colours)):
        groups = []
        for width in widths:
            rows = networks[(networks.arm == arm) & (networks.width == width)]
            groups.append(rows[~rows.diverged.astype(bool)].test_accuracy.to_numpy())
        positions = np.arange(len(widths)) - 0.4 + span * (k + 0.5)
        parts = ax.boxplot(groups, positions=positions, widths=0.85 * span, patch_artist=True,
                           showfliers=False, medianprops={"color": "k"})
        for box in parts["boxes"]:
            box.set_facecolor(colour)
        ax.plot([], [], "s", color=colour, label=arm_label(arm))
    ax.set_xticks(range(len(widths)), [str(int(w)) for w in widths])
    ax.set_xlabel("hidden neurons")
    ax.set_ylabel("test accuracy")
    baseline_lines(ax, results, "test_accuracy")
    seeds = networks.groupby(["arm", "width"]).size().min()
    ax.set_title(f"MNIST-1D, {seeds} seeds per box")
    fig.legend(ncols=len(arms), loc="outside lower center", frameon=False)
    return fig

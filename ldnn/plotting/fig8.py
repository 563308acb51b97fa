"""Fig. 8: joint density of test accuracy A and participation ratio r per arm."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import gaussian_kde

from ldnn.plotting.style import arm_label, trained


def draw(results: pd.DataFrame, arms: Sequence[str]):
    """results: the study's table with test_accuracy and participation columns."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5), layout="constrained")
    networks = trained(results)
    ok = networks[~networks.diverged.astype(bool)]
    colours = plt.cm.tab10(np.arange(len(arms)))
    for arm, colour in zip(arms, colours):
        rows = ok[ok.arm == arm]
        points = np.stack([rows.participation, rows.test_accuracy])
        ax.scatter(*points, s=6, color=colour, alpha=0.6)
        spread = points.std(1)
        if len(rows) > 2 and (spread > 0).all():
            axes = [np.linspace(p.min() - 3 * s, p.max() + 3 * s, 80) for p, s in zip(points, spread)]
            xx, yy = np.meshgrid(*axes)
            density = gaussian_kde(points)(np.stack([xx.ravel(), yy.ravel()])).reshape(xx.shape)
            ax.contour(xx, yy, density, levels=density.max() * np.array([0.1, 0.3, 0.5, 0.7, 0.9]),
                       colors=[colour], linewidths=0.8)
        ax.plot([], [], "o", color=colour, label=f"{arm_label(arm)} (n={len(rows)})")
    ax.set_xlabel("participation ratio r = R / N")
    ax.set_ylabel("test accuracy A")
    ax.set_title("ρ(A, r) per arm")
    ax.legend(frameon=False, fontsize=8)
    return fig

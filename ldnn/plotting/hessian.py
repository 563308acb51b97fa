"""Hessian spectral densities per arm (log scale), from stochastic Lanczos quadrature."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from ldnn.analysis.hessian import density
from ldnn.plotting.style import arm_label


def draw(arms: Sequence[str], spectra: Sequence[dict[str, np.ndarray]],
         tables: Sequence[pd.DataFrame]):
    """spectra[i]: nodes and weights (S, P, k) of arm i; tables[i]: its per-seed table."""
    fig, (ax, bars) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained",
                                   gridspec_kw={"width_ratios": [2, 1]})
    low = min(float(s["nodes"].min()) for s in spectra)
    high = max(float(s["nodes"].max()) for s in spectra)
    grid = torch.linspace(low - 0.05 * (high - low), high + 0.05 * (high - low), 2000,
                          dtype=torch.float64)
    width = 0.005 * (high - low)
    colours = plt.cm.tab10(np.arange(len(arms)))
    for arm, spectrum, colour in zip(arms, spectra, colours):
        nodes = torch.from_numpy(spectrum["nodes"]).reshape(-1, spectrum["nodes"].shape[-1])
        weights = torch.from_numpy(spectrum["weights"]).reshape(nodes.shape)
        ax.plot(grid, density(nodes, weights, grid, width).clamp(min=1e-8), color=colour,
                label=arm_label(arm), lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("eigenvalue λ of the training-loss Hessian")
    ax.set_ylabel("density")
    ax.legend(frameon=False)
    traces = [t.trace.to_numpy() for t in tables]
    bars.boxplot(traces, medianprops={"color": "k"})
    bars.set_xticks(range(1, len(arms) + 1),
                    [f"{arm_label(a)}\nf={t.fraction_small.median():.2f}" for a, t in zip(arms, tables)])
    bars.set_ylabel("Tr H")
    bars.set_title("trace per seed; f: median fraction of |λ| < threshold", fontsize=8)
    return fig

"""Shared look of every figure."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ldnn.io import atomic_path  # noqa: E402

plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                     "savefig.bbox": "tight", "pdf.fonttype": 42,
                     "svg.hashsalt": "ldnn", "path.simplify": False})
TIME_COLORMAP = plt.cm.rainbow  # violet (early) → red (late)
ARM_LABELS = {"relu": "ReLU", "tanh": "tanh", "sin": "sine", "mixed": "mixed"}


def arm_label(arm: str) -> str:
    return ARM_LABELS.get(arm, arm.replace("type", "type "))


def time_colors(n: int) -> np.ndarray:
    return TIME_COLORMAP(np.linspace(0, 1, n))


def box_by_arm(ax, results: pd.DataFrame, arms: Sequence[str], column: str, label: str) -> None:
    """Box plot of `column` per arm over seeds, with n and diverged counts under the labels."""
    groups, ticks = [], []
    for arm in arms:
        rows = results[results.arm == arm]
        ok = rows[~rows.diverged.astype(bool)]
        groups.append(ok[column].to_numpy())
        extra = f"\n{int(rows.diverged.sum())} div." if rows.diverged.any() else ""
        ticks.append(f"{arm_label(arm)}\nn={len(ok)}{extra}")
    ax.boxplot(groups, showfliers=True, widths=0.6, medianprops={"color": "k"})
    ax.set_xticks(range(1, len(arms) + 1), ticks)
    ax.set_ylabel(label)


def save(fig, paths: Sequence[str | Path], dpi: int) -> None:
    """Write the figure to every path (format from the suffix), atomically; close it."""
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=Path(path).suffix[1:],
                        metadata={"CreationDate": None} if str(path).endswith(".pdf") else None)
    plt.close(fig)

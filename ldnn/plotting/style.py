"""Shared look of every figure."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ldnn.baselines import BASELINE  # noqa: E402
from ldnn.io import atomic_path  # noqa: E402

plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                     "savefig.bbox": "tight", "pdf.fonttype": 42,
                     "svg.hashsalt": "ldnn", "path.simplify": False})
TIME_COLORMAP = plt.cm.rainbow  # violet (early) → red (late)
REPLICATE_COLOURS = plt.cm.tab10  # points of meta-learning replicate r
ARM_LABELS = {"relu": "ReLU", "tanh": "tanh", "sin": "sine", "mixed": "mixed"}


def arm_label(arm: str) -> str:
    return ARM_LABELS.get(arm, arm.replace("type", "type "))


def time_colors(n: int) -> np.ndarray:
    return TIME_COLORMAP(np.linspace(0, 1, n))


def time_coloured_line(ax, times: np.ndarray, points: np.ndarray):
    """Draw the curve points (L, 2) coloured by times (L,), violet → red; returns the line
    collection (for a colour bar)."""
    from matplotlib.collections import LineCollection

    segments = np.stack([points[:-1], points[1:]], axis=1)
    line = LineCollection(segments, cmap=TIME_COLORMAP, norm=plt.Normalize(times[0], times[-1]))
    line.set_array(times[:-1])
    ax.add_collection(line)
    ax.autoscale()
    return line


def trained(results: pd.DataFrame) -> pd.DataFrame:
    """The trained networks' rows of a study's table (not its baselines')."""
    return results[results.protocol != BASELINE]


def baseline_lines(ax, results: pd.DataFrame, column: str) -> None:
    """The baselines' values of `column` as dashed horizontal lines, named at the right; a
    baseline far outside the networks' values (more than 3× beyond their range, e.g. an
    exact polynomial fit) is named with its value at the bottom or top instead, so that it
    does not squash the boxes."""
    networks = trained(results)[column]
    low, high = networks.min(), networks.max()
    rows = results[(results.protocol == BASELINE) & np.isfinite(results[column])]
    below = above = 0
    for row, colour in zip(rows.itertuples(), plt.cm.Greys(np.linspace(0.55, 0.85, len(rows)))):
        value = getattr(row, column)
        if low / 3 <= value <= 3 * high or not np.isfinite([low, high]).all() or low <= 0:
            ax.axhline(value, color=colour, ls="--", lw=0.8, zorder=0)
            ax.annotate(row.arm, (1, value), xycoords=("axes fraction", "data"), xytext=(2, 0),
                        textcoords="offset points", va="center", fontsize=7, color=colour)
            continue
        outside = value < low
        ax.annotate(f"{row.arm} {value:.2g} {'↓' if outside else '↑'}",
                    (1, 0 if outside else 1), xycoords="axes fraction",
                    xytext=(2, 9 * (below if outside else -above)), textcoords="offset points",
                    va="bottom" if outside else "top", fontsize=7, color=colour)
        below, above = below + outside, above + (not outside)


def box_by_arm(ax, results: pd.DataFrame, arms: Sequence[str], column: str, label: str) -> None:
    """Box plot of `column` per arm over seeds, with n, unconverged and diverged counts
    under the labels and the baselines as dashed lines."""
    networks = trained(results)
    groups, ticks = [], []
    for arm in arms:
        rows = networks[networks.arm == arm]
        ok = rows[~rows.diverged.astype(bool)]
        groups.append(ok[column].to_numpy())
        extra = f"\n{int(ok.unconverged.sum())} unconv." if ok.unconverged.any() else ""
        extra += f"\n{int(rows.diverged.sum())} div." if rows.diverged.any() else ""
        ticks.append(f"{arm_label(arm)}\nn={len(ok)}{extra}")
    ax.boxplot(groups, showfliers=False, widths=0.6, medianprops={"color": "k"})
    replicate_points(ax, [networks[(networks.arm == arm) & ~networks.diverged.astype(bool)]
                          for arm in arms], column)
    ax.set_xticks(range(1, len(arms) + 1), ticks, fontsize=6.5)
    ax.set_ylabel(label)
    baseline_lines(ax, results, column)


def replicate_points(ax, groups: Sequence[pd.DataFrame], column: str,
                     positions: Sequence[float] | None = None, spread: float = 0.25) -> None:
    """Every network of each group (rows of a table) as a point over its box, coloured by
    its meta-learning replicate (the same colour in every box), jittered sideways."""
    positions = positions if positions is not None else range(1, len(groups) + 1)
    for position, rows in zip(positions, groups):
        replicates = rows.replicate.to_numpy(int) if "replicate" in rows else np.zeros(len(rows))
        offsets = np.random.default_rng(0).uniform(-spread, spread, len(rows))
        ax.scatter(position + offsets, rows[column], s=4, zorder=3, linewidths=0,
                   c=REPLICATE_COLOURS(replicates % REPLICATE_COLOURS.N))


def width_of(results: pd.DataFrame) -> int:
    """The hidden width of a study's trained networks (the first, if several)."""
    return int(trained(results).width.iloc[0])


def activation_evolution(fig, cells, history: dict[str, np.ndarray], curves: int) -> list:
    """One panel per learned type in `cells` (grid-spec cells): `curves` snapshots of the
    activation, coloured by outer step violet → red, with a shared colour bar, and the
    final activations of the other meta-learning replicates as grey dashed lines.

    history: grid (P,), snapshot_steps (K,), snapshots (K, T, P), other_finals (R − 1, T, P)."""
    snapshots, steps = history["snapshots"], history["snapshot_steps"]
    chosen = np.unique(np.linspace(0, len(steps) - 1, min(curves, len(steps))).round().astype(int))
    axes = []
    for t, cell in enumerate(cells):
        ax = fig.add_subplot(cell)
        for final in history["other_finals"][:, t]:
            ax.plot(history["grid"], final, color="0.6", lw=0.6, ls="--")
        for color, k in zip(time_colors(len(chosen)), chosen):
            ax.plot(history["grid"], snapshots[k, t], color=color, lw=1)
        ax.set_ylabel(f"type {t + 1}  σ(x)")
        axes.append(ax)
    axes[-1].set_xlabel("x")
    scalar = plt.cm.ScalarMappable(cmap=TIME_COLORMAP,
                                   norm=plt.Normalize(steps[chosen[0]], steps[chosen[-1]]))
    fig.colorbar(scalar, ax=axes, label="outer step", location="right", shrink=0.8)
    return axes


def save(fig, paths: Sequence[str | Path], dpi: int) -> None:
    """Write the figure to every path (format from the suffix), atomically; close it."""
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format=Path(path).suffix[1:],
                        metadata={"CreationDate": None} if str(path).endswith(".pdf") else None)
    plt.close(fig)

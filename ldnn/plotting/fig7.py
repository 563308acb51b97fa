"""Fig. 7: the pendulum clock's tracked video, its state-space flow, test loss per arm."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ldnn.plotting.style import box_by_arm, time_coloured_line, width_of


def draw(frame: np.ndarray | None, frame_index: int, markers: pd.DataFrame,
         angles: pd.DataFrame, results: pd.DataFrame, arms: Sequence[str]):
    """frame (H, W, 3) uint8 or None; markers: the tracking table; angles: time, theta,
    theta_dot; results: the study's table."""
    fig, (video, flow, boxes) = plt.subplots(1, 3, figsize=(12, 3.8), layout="constrained",
                                             gridspec_kw={"width_ratios": [1.2, 1, 1]})
    if frame is not None:
        video.imshow(frame)
    for colour in ("blue", "red"):
        xy = markers[[f"{colour}_x", f"{colour}_y"]].to_numpy()
        video.plot(*xy.T, color=colour, lw=0.5, alpha=0.6)
        at = markers[markers.frame == frame_index][[f"{colour}_x", f"{colour}_y"]].to_numpy()
        video.plot(*at.T, "o", mfc="none", mec="white", ms=12, mew=1.5)
    if frame is None:
        video.invert_yaxis()
        video.set_aspect("equal")
    video.set_title(f"tracked markers (frame {frame_index})" if frame is not None
                    else "tracked markers")
    video.set_xlabel("x (px)")
    video.set_ylabel("y (px)")

    line = time_coloured_line(flow, angles.time.to_numpy(),
                              angles[["theta", "theta_dot"]].to_numpy())
    flow.set_xlabel("θ (rad)")
    flow.set_ylabel("θ̇ (rad/s)")
    flow.set_title("state-space flow")
    fig.colorbar(line, ax=flow, label="time (s)", shrink=0.8)

    box_by_arm(boxes, results, arms, "test_loss", "test MSE of (θ̇, θ̈)")
    boxes.set_yscale("log")
    boxes.set_title(f"Hamiltonian network, width {width_of(results)}")
    return fig

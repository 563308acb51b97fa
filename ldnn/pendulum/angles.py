"""From tracked marker positions to the pendulum's angle and its derivatives.

θ is the direction of the vector from the blue to the red marker, unwrapped; a cubic
polynomial in time is subtracted (the rod's mean direction and slow camera drift); θ̇ and
θ̈ are Savitzky–Golay derivatives. Short gaps in the tracking are interpolated linearly in
the marker coordinates and flagged; longer ones are an error.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.signal import savgol_filter

MARKER_COLUMNS = ["frame", "blue_x", "blue_y", "red_x", "red_y"]


class MarkersError(ValueError):
    """A markers table that cannot be turned into angles; the message says why."""


def fill_gaps(markers: pd.DataFrame, max_gap: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Markers with runs of ≤ max_gap missing frames interpolated, and the flag (N,) of the
    filled rows. Missing rows at either end are dropped; a longer run is a MarkersError."""
    missing = markers[MARKER_COLUMNS[1:]].isna().any(axis=1).to_numpy()
    if missing.all():
        raise MarkersError("markers were not found in any frame")
    first, last = np.flatnonzero(~missing)[[0, -1]]
    markers, missing = markers.iloc[first:last + 1].reset_index(drop=True), missing[first:last + 1]
    edges = np.diff(np.concatenate([[0], missing.astype(int), [0]]))
    for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
        if stop - start > max_gap:
            raise MarkersError(f"markers missing for {stop - start} consecutive frames from "
                               f"frame {int(markers.frame[start])}; at most {max_gap} can be "
                               "interpolated")
    filled = markers.copy()
    filled[MARKER_COLUMNS[1:]] = markers[MARKER_COLUMNS[1:]].interpolate("linear")
    return filled, missing


def rod_angle(markers: pd.DataFrame) -> np.ndarray:
    """Direction of the rod from the blue to the red marker in each frame (rad, image
    axes), NaN where a marker is missing."""
    return np.arctan2(markers.red_y - markers.blue_y, markers.red_x - markers.blue_x).to_numpy()


def angles(markers: pd.DataFrame, dt: float, window: int, order: int, max_gap: int,
           detrend_degree: int = 3) -> pd.DataFrame:
    """Columns time, theta, theta_dot, theta_ddot, interpolated: one row per frame."""
    missing_columns = [c for c in MARKER_COLUMNS if c not in markers.columns]
    if missing_columns:
        raise MarkersError(f"markers table lacks columns {missing_columns}; "
                           f"expected {MARKER_COLUMNS}")
    if len(markers) < 2 * window:
        raise MarkersError(f"markers table has {len(markers)} rows; at least {2 * window} "
                           f"(twice the Savitzky–Golay window) are needed")
    markers, interpolated = fill_gaps(markers, max_gap)
    if len(markers) < 2 * window:
        raise MarkersError(f"only {len(markers)} frames have markers; at least {2 * window} "
                           "are needed")
    time = (markers.frame.to_numpy() - markers.frame.iloc[0]) * dt
    raw = np.unwrap(rod_angle(markers))
    theta = raw - np.polyval(np.polyfit(time, raw, detrend_degree), time)
    return pd.DataFrame({
        "time": time, "theta": theta,
        "theta_dot": savgol_filter(theta, window, order, deriv=1, delta=dt),
        "theta_ddot": savgol_filter(theta, window, order, deriv=2, delta=dt),
        "interpolated": interpolated})

"""Tracking two coloured markers through a video, sub-pixel.

Every frame: a soft membership per colour (hue close to the marker's, saturated, not
dark), connected blobs of it, and each blob's membership-weighted centroid. Which blue
and red blob are the markers is decided over the whole video: the markers sit at the two
ends of a rigid rod, so their distance is nearly constant while any distractor's distance
to a marker changes as the pendulum swings. A frame whose pair does not match the rod
length leaves the unmatched marker missing (NaN).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from ldnn.pendulum.angles import MARKER_COLUMNS
from ldnn.pendulum.video import VideoError, read_video

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tracking:
    """Marker colours (RGB 0–255) and what counts as one of them."""
    blue: tuple[int, int, int] = (30, 64, 230)
    red: tuple[int, int, int] = (224, 26, 31)
    hue_tolerance: float = 0.06       # fraction of the hue circle
    min_saturation: float = 0.55
    min_area: int = 4                 # pixels above half membership
    length_tolerance: float = 0.03    # relative deviation from the rod length


def _hue_saturation_value(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HSV of float RGB (..., 3) in [0, 1], hue in [0, 1)."""
    top, bottom = rgb.max(-1), rgb.min(-1)
    chroma = top - bottom
    safe = np.where(chroma > 0, chroma, 1)
    r, g, b = np.moveaxis(rgb, -1, 0)
    hue = np.where(top == r, (g - b) / safe, np.where(top == g, 2 + (b - r) / safe,
                                                     4 + (r - g) / safe)) / 6
    return hue % 1.0, chroma / np.where(top > 0, top, 1), top


def membership(hsv: tuple[np.ndarray, np.ndarray, np.ndarray], colour: tuple[int, int, int],
               tracking: Tracking) -> np.ndarray:
    """How much each pixel looks like `colour`, from the frame's HSV: (H, W) in [0, 1]."""
    hue, saturation, value = hsv
    target = _hue_saturation_value(np.asarray(colour, np.float32) / 255)[0]
    distance = np.abs((hue - target + 0.5) % 1.0 - 0.5)
    closeness = np.clip(2 - distance / tracking.hue_tolerance * 1.5, 0, 1)
    saturated = np.clip((saturation - tracking.min_saturation) / 0.15 + 0.5, 0, 1)
    return closeness * saturated * (value > 0.15)


def blobs(score: np.ndarray, min_area: int) -> np.ndarray:
    """Membership-weighted centroids (x, y) of the blobs of `score` > 0.5, each over its
    bounding box grown by 2 pixels (to include anti-aliased edges): (n, 2)."""
    labels, _ = ndimage.label(score > 0.5)
    centres = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if np.count_nonzero(labels[box] == index) < min_area:
            continue
        rows = slice(max(box[0].start - 2, 0), min(box[0].stop + 2, score.shape[0]))
        cols = slice(max(box[1].start - 2, 0), min(box[1].stop + 2, score.shape[1]))
        weights = np.where(score[rows, cols] > 0.05, score[rows, cols], 0)
        y, x = np.mgrid[rows, cols]
        total = weights.sum()
        centres.append(((weights * x).sum() / total, (weights * y).sum() / total))
    return np.array(centres).reshape(-1, 2)


def rod_length(candidates: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """The most common blue–red distance over all frames (the rod), refined by a median."""
    distances = np.concatenate([np.linalg.norm(b[:, None] - r[None], axis=-1).ravel()
                                for b, r in candidates if len(b) and len(r)] + [np.empty(0)])
    if distances.size == 0:
        raise VideoError("markers of both colours were never seen together")
    counts, edges = np.histogram(distances, bins=np.arange(0, distances.max() + 2, 1.0))
    mode = edges[np.argmax(counts)] + 0.5
    return float(np.median(distances[np.abs(distances - mode) <= 2]))


def pick_markers(candidates: list[tuple[np.ndarray, np.ndarray]], length: float,
                 tolerance: float) -> np.ndarray:
    """Per frame, the blue and red blob whose distance is closest to the rod length and
    that continue the last accepted positions: (N, 4) of blue_x, blue_y, red_x, red_y; NaN
    where no blob fits. A marker may move at most tolerance·length per frame since it was
    last seen, so a distractor that happens to lie a rod length away is not taken while
    the true marker is hidden."""
    out = np.full((len(candidates), 4), np.nan)
    last = [None, None]           # last accepted position of each marker and its frame

    def continues(side: int, position: np.ndarray, frame: int) -> bool:
        if last[side] is None:
            return True
        seen, at = last[side]
        return np.linalg.norm(position - seen) <= tolerance * length * (frame - at)

    for i, found in enumerate(candidates):
        blue, red = found
        if len(blue) and len(red):
            distance = np.linalg.norm(blue[:, None] - red[None], axis=-1)
            for j, k in zip(*np.unravel_index(np.argsort(np.abs(distance - length), axis=None),
                                              distance.shape)):
                if abs(distance[j, k] - length) > tolerance * length:
                    break
                if continues(0, blue[j], i) and continues(1, red[k], i):
                    out[i] = [*blue[j], *red[k]]
                    last = [(blue[j], i), (red[k], i)]
                    break
            if not np.isnan(out[i]).any():
                continue
        for side, blobs_of_side in enumerate(found):
            if len(blobs_of_side) and last[side] is not None:
                nearest = blobs_of_side[np.argmin(np.linalg.norm(blobs_of_side - last[side][0],
                                                                 axis=-1))]
                if continues(side, nearest, i):
                    out[i, 2 * side:2 * side + 2] = nearest
                    last[side] = (nearest, i)
    return out


def track(video: str | Path, tracking: Tracking, min_frames: int) -> tuple[pd.DataFrame, float]:
    """The markers table (frame, blue_x, blue_y, red_x, red_y; NaN where lost) and the
    frame rate of `video`."""
    info, frames = read_video(video)
    if info.frames < min_frames:
        raise VideoError(f"video {video}: {info.frames} frames, at least {min_frames} needed")
    log.info("tracking %s: %d frames of %dx%d at %.3g fps", video, info.frames, info.width,
             info.height, info.fps)
    candidates, started = [], time.perf_counter()
    for i, frame in enumerate(frames):
        hsv = _hue_saturation_value(frame.astype(np.float32) / 255)
        candidates.append(tuple(blobs(membership(hsv, colour, tracking), tracking.min_area)
                                for colour in (tracking.blue, tracking.red)))
        if (i + 1) % 500 == 0:
            log.info("frame %d/%d  %.1f frames/s", i + 1, info.frames,
                     (i + 1) / (time.perf_counter() - started))
    length = rod_length(candidates)
    positions = pick_markers(candidates, length, tracking.length_tolerance)
    found = ~np.isnan(positions).any(axis=1)
    log.info("rod length %.1f px; both markers found in %d of %d frames; %.1f frames/s",
             length, found.sum(), len(found), len(found) / (time.perf_counter() - started))
    if found.sum() < 0.5 * len(found):
        raise VideoError(f"video {video}: markers found in only {found.sum()} of {len(found)} "
                         "frames; check pendulum.tracking colours")
    table = pd.DataFrame(positions, columns=MARKER_COLUMNS[1:])
    table.insert(0, "frame", np.arange(len(table)))
    return table, info.fps

"""A synthetic video of the pendulum clock with ground truth.

The scene: a textured wall and clock case; the pendulum's rod swings about a pivot, with
a blue marker at its top end (above the pivot) and a red marker on the bob at its bottom
end, like the tracked real clock. Rendering is physical enough to make tracking honest:
anti-aliased shapes, motion blur (the image is averaged over the exposure), lighting
flicker, Gaussian sensor noise and H.264 compression; optionally a static red distractor
and occlusions that hide the red marker for a few frames.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
from scipy.ndimage import gaussian_filter

from ldnn.pendulum.clock import Clock, simulate

BLUE = (0.12, 0.25, 0.90)
RED = (0.88, 0.10, 0.12)
ROD = (0.25, 0.20, 0.14)
BOB = (0.72, 0.58, 0.26)
SUBSAMPLES = 8            # renders averaged over one exposure


@dataclass(frozen=True)
class Scene:
    """Frame size in pixels (the geometry scales with the height), effects as fractions of
    full scale; occlusions: (first frame, frame count) pairs during which the red marker
    is hidden."""
    width: int = 640
    height: int = 480
    noise: float = 0.02
    flicker: float = 0.05
    exposure: float = 0.5       # of the frame interval
    distractor: bool = True
    occlusions: tuple[tuple[int, int], ...] = field(default_factory=tuple)
    seed: int = 0

    @property
    def pivot(self) -> tuple[float, float]:
        return (self.width / 2, 0.23 * self.height)

    @property
    def top(self) -> float:
        """Pivot → blue marker."""
        return 0.146 * self.height

    @property
    def bottom(self) -> float:
        """Pivot → red marker (bob centre)."""
        return 0.667 * self.height

    @property
    def marker_radius(self) -> float:
        return 0.0146 * self.height

    @property
    def rod_width(self) -> float:
        return 0.0125 * self.height

    @property
    def bob_radius(self) -> float:
        return 0.05 * self.height


def background(scene: Scene) -> np.ndarray:
    """Wall with smooth mottling and a wood-grained clock case: (H, W, 3) float32 in [0, 1]."""
    rng = np.random.default_rng(scene.seed)
    h, w = scene.height, scene.width
    mottle = gaussian_filter(rng.normal(size=(h, w)), 12) * 6
    image = np.empty((h, w, 3), np.float32)
    image[:] = np.array([0.78, 0.74, 0.66]) * (1 + 0.08 * mottle[..., None])
    left, right = int(scene.pivot[0] - 0.3 * w), int(scene.pivot[0] + 0.3 * w)
    x = np.arange(left, right)
    grain = 0.5 + 0.5 * np.sin(x / 3.0 + 2 * gaussian_filter(rng.normal(size=x.size), 4))
    wood = np.array([0.45, 0.30, 0.18]) * (0.85 + 0.15 * grain[None, :, None])
    image[:, left:right] = wood * (1 + 0.05 * mottle[:, left:right, None])
    return np.clip(image, 0, 1)


def _paint_disc(layer: np.ndarray, origin: tuple[int, int], centre, radius: float,
                colour) -> None:
    """Paint an anti-aliased disc into `layer` (h, w, 3) whose pixel (0, 0) is at `origin`."""
    r = int(np.ceil(radius)) + 2
    cx, cy = int(round(centre[0])) - origin[0], int(round(centre[1])) - origin[1]
    x0, x1 = max(cx - r, 0), min(cx + r + 1, layer.shape[1])
    y0, y1 = max(cy - r, 0), min(cy + r + 1, layer.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    distance = np.hypot(xx + origin[0] - centre[0], yy + origin[1] - centre[1])
    cover = np.clip(radius + 0.5 - distance, 0, 1)[..., None]
    window = layer[y0:y1, x0:x1]
    window += cover * (np.asarray(colour, np.float32) - window)


def _segment(xx, yy, start, end, width) -> np.ndarray:
    d = np.subtract(end, start)
    t = np.clip(((xx - start[0]) * d[0] + (yy - start[1]) * d[1]) / (d @ d), 0, 1)
    distance = np.hypot(xx - start[0] - t * d[0], yy - start[1] - t * d[1])
    return np.clip(width / 2 + 0.5 - distance, 0, 1)


def marker_positions(scene: Scene, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Blue (top) and red (bottom) marker centres for angles θ (...): two (..., 2) arrays.

    The rod points from the pivot along (−sin θ, cos θ) in image coordinates (y down), so
    the angle of the blue → red vector, atan2(Δy, Δx), is π/2 + θ."""
    direction = np.stack([-np.sin(theta), np.cos(theta)], -1)
    pivot = np.asarray(scene.pivot)
    return pivot - scene.top * direction, pivot + scene.bottom * direction


def render_frames(scene: Scene, theta_exposure: np.ndarray) -> Iterator[np.ndarray]:
    """Frames (H, W, 3) uint8 from the angles θ (N, SUBSAMPLES) sampled over each exposure."""
    rng = np.random.default_rng(scene.seed + 1)
    base = background(scene)
    if scene.distractor:
        spot = (scene.pivot[0] + 0.22 * scene.width, scene.pivot[1] + 0.55 * scene.bottom)
        _paint_disc(base, (0, 0), spot, scene.marker_radius + 1, RED)
    swing = float(np.max(np.abs(theta_exposure)))
    margin = scene.bob_radius + 3
    reach = (scene.bottom + margin) * np.sin(swing) + margin
    x0, x1 = int(max(0, scene.pivot[0] - reach)), int(min(scene.width, scene.pivot[0] + reach))
    y0 = int(max(0, scene.pivot[1] - scene.top - margin))
    y1 = int(min(scene.height, scene.pivot[1] + scene.bottom + margin))
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    patch = base[y0:y1, x0:x1]
    rod = np.asarray(ROD, np.float32)
    for i, thetas in enumerate(theta_exposure):
        blurred = np.zeros_like(patch)
        for theta in thetas:
            blue, red = marker_positions(scene, theta)
            layer = patch.copy()
            layer += _segment(xx, yy, blue, red, scene.rod_width)[..., None] * (rod - layer)
            for centre, radius, colour in ((red, scene.bob_radius, BOB),
                                           (scene.pivot, scene.rod_width, ROD),
                                           (blue, scene.marker_radius, BLUE),
                                           (red, scene.marker_radius, RED)):
                _paint_disc(layer, (x0, y0), centre, radius, colour)
            blurred += layer
        frame = base.copy()
        frame[y0:y1, x0:x1] = blurred / len(thetas)
        if any(first <= i < first + count for first, count in scene.occlusions):
            _, red = marker_positions(scene, thetas[len(thetas) // 2])
            r = int(2 * scene.marker_radius)
            frame[int(red[1]) - r:int(red[1]) + r, int(red[0]) - r:int(red[0]) + r] = 0.3
        brightness = 1 + scene.flicker * (0.7 * np.sin(2 * np.pi * 0.03 * i)
                                          + 0.3 * rng.uniform(-1, 1))
        frame = frame * brightness + scene.noise * rng.standard_normal(frame.shape, np.float32)
        yield (np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8)


def synthetic_clock(clock: Clock, scene: Scene, duration: float, fps: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Angles over every exposure (N, SUBSAMPLES) and the ground truth (N, 2) of (time, θ)
    at the middle of each exposure, for N = ⌊duration·fps⌋ frames."""
    n = int(duration * fps)
    step = 1 / (fps * 4 * SUBSAMPLES)
    fine = simulate(clock, n / fps + 2 * step, step)
    fine_times = np.arange(fine.size) * step
    starts = np.arange(n) / fps
    offsets = (np.arange(SUBSAMPLES) + 0.5) / SUBSAMPLES * scene.exposure / fps
    exposure = np.interp(starts[:, None] + offsets, fine_times, fine)
    middle = starts + 0.5 * scene.exposure / fps
    return exposure, np.stack([middle, np.interp(middle, fine_times, fine)], -1)

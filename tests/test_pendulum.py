"""The pendulum clock: simulation, rendering and tracking with ground truth, angles from
the real clock's markers, and clear errors for bad videos and tables."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ldnn import stages
from ldnn.pendulum.angles import MarkersError, angles
from ldnn.pendulum.clock import Clock, simulate
from ldnn.pendulum.render import Scene, marker_positions, render_frames, synthetic_clock
from ldnn.pendulum.track import Tracking, blobs, pick_markers, track
from ldnn.pendulum.video import VideoError, read_video, write_video

REAL = Path(__file__).resolve().parents[2] / "shared/data/pendulum_clock"

TRACK_RMS = 2e-3            # rad: tracked angle vs ground truth (issue requirement)
STEADY_AMPLITUDE = 0.02     # relative drift of the swing over a minute of escapement pushes
PERIOD_TOLERANCE = 0.005    # relative: period vs the small-swing period with its
                            # finite-amplitude correction (1 + A²/16)
# Real clock: our angles vs the authors' (they are rounded to 4 decimals; their θ̈ lags
# their θ by one frame).
REAL_THETA_CORR, REAL_THETA_RMS = 0.9995, 2e-3
REAL_RATE_CORR, REAL_RATE_RMS = 0.998, 0.015
REAL_ACCEL_CORR = 0.999
SAVGOL_RATE_RMS = 0.01      # of the peak θ̇: Savitzky–Golay 31/4 over half a period (bias)


def test_escapement_sustains_the_swing_at_the_configured_amplitude_and_period():
    clock = Clock(period=2.0, amplitude=0.1, damping=0.05)
    step = 1 / 400
    theta = simulate(clock, 60.0, step)
    last = theta[-int(4 / step):]
    assert abs(last.max() / clock.amplitude - 1) < STEADY_AMPLITUDE
    times = np.arange(theta.size) * step
    up = np.flatnonzero((theta[:-1] < 0) & (theta[1:] >= 0))
    crossings = times[up] - theta[up] * step / (theta[up + 1] - theta[up])
    expected = clock.period * (1 + clock.amplitude ** 2 / 16)
    assert abs(np.diff(crossings).mean() / expected - 1) < PERIOD_TOLERANCE
    undriven = simulate(Clock(period=2.0, amplitude=0.1, damping=0.05), 60.0, step)
    assert undriven.shape == theta.shape


def render(tmp_path: Path, scene: Scene, seconds: float = 2.0) -> tuple[Path, np.ndarray]:
    exposure, truth = synthetic_clock(Clock(), scene, seconds, 30.0)
    path = tmp_path / "clock.mp4"
    write_video(path, render_frames(scene, exposure), 30.0)
    return path, truth


@pytest.mark.parametrize("distractor, occlusions", [(False, ()), (True, ((20, 3),))])
def test_tracker_recovers_the_rendered_angle(tmp_path, distractor, occlusions):
    scene = Scene(distractor=distractor, occlusions=occlusions)
    path, truth = render(tmp_path, scene)
    markers, fps = track(path, Tracking(), 10)
    assert fps == 30.0 and list(markers.frame) == list(range(len(truth)))
    theta = np.arctan2(markers.red_y - markers.blue_y, markers.red_x - markers.blue_x) - np.pi / 2
    seen = np.isfinite(theta)
    assert np.sqrt(np.mean((theta[seen] - truth[seen, 1]) ** 2)) <= TRACK_RMS
    hidden = [i for first, count in occlusions for i in range(first, first + count)]
    assert list(np.flatnonzero(markers.red_x.isna())) == hidden
    assert not markers.blue_x.isna().any()
    blue, _ = marker_positions(scene, truth[:, 1])
    assert np.abs(markers[["blue_x", "blue_y"]].to_numpy() - blue).max() < 1.0


def test_blobs_at_the_frame_border_have_in_frame_centroids():
    score = np.zeros((20, 20))
    score[0:3, 18:20] = 1
    score[10:13, 0:2] = 1
    np.testing.assert_allclose(blobs(score, 2), [[18.5, 1.0], [0.5, 11.0]])


def test_a_distractor_a_rod_length_away_is_not_taken_while_the_marker_is_hidden():
    length = 100.0
    blue = np.array([[0.0, 0.0]])
    red = [np.array([[0.0, 100.0 + i]]) for i in range(3)]
    distractor = np.array([[60.0, 80.5]])                     # 100.3 from the blue marker
    candidates = [(blue, np.concatenate([red[0], distractor])),
                  (blue, np.concatenate([red[1], distractor])),
                  (blue, distractor),                         # red hidden
                  (blue, np.concatenate([red[2], distractor]))]
    picked = pick_markers(candidates, length, 0.03)
    np.testing.assert_allclose(picked[[0, 1, 3], 2:], np.concatenate([red[0], red[1], red[2]]))
    assert np.isnan(picked[2, 2:]).all() and not np.isnan(picked[:, :2]).any()


def test_angles_of_a_known_swing_match_its_derivatives():
    scene, dt = Scene(), 1 / 30
    t = np.arange(900) * dt
    omega = 2 * np.pi / 2.03
    theta = 0.1 * np.sin(omega * t)
    blue, red = marker_positions(scene, theta)
    markers = pd.DataFrame({"frame": np.arange(t.size), "blue_x": blue[:, 0],
                            "blue_y": blue[:, 1], "red_x": red[:, 0], "red_y": red[:, 1]})
    result = angles(markers, dt, 31, 4, max_gap=5)
    assert not result.interpolated.any()
    trend = np.polyfit(t, theta, 3)               # what the cubic detrend removes
    np.testing.assert_allclose(result.theta, theta - np.polyval(trend, t), rtol=0, atol=1e-9)
    rate = 0.1 * omega * np.cos(omega * t) - np.polyval(np.polyder(trend), t)
    inner = slice(15, -15)                        # the windows that fit inside the series
    error = np.sqrt(np.mean((result.theta_dot - rate)[inner] ** 2))
    assert error < SAVGOL_RATE_RMS * 0.1 * omega

    markers.loc[100:102, ["red_x", "red_y"]] = np.nan
    gappy = angles(markers, dt, 31, 4, max_gap=5)
    assert list(np.flatnonzero(gappy.interpolated)) == [100, 101, 102]
    assert np.abs(gappy.theta - result.theta).max() < 2e-3       # a chord across 3 frames


@pytest.mark.skipif(not (REAL / "markers.csv").exists(), reason="real clock data not present")
def test_angles_from_the_real_clock_markers_agree_with_the_authors():
    ours = angles(pd.read_csv(REAL / "markers.csv"), 0.0335, 31, 4, max_gap=5)
    theirs = np.loadtxt(REAL / "extracted_angles.csv", delimiter=",")
    n = len(theirs)

    def compare(column, k, shift=0):
        a = ours[column].to_numpy()[shift:shift + n]
        return np.corrcoef(a, theirs[:, k])[0, 1], np.sqrt(np.mean((a - theirs[:, k]) ** 2))

    corr, rms = compare("theta", 1)
    assert corr >= REAL_THETA_CORR and rms <= REAL_THETA_RMS
    corr, rms = compare("theta_dot", 2)
    assert corr >= REAL_RATE_CORR and rms <= REAL_RATE_RMS
    corr, _ = compare("theta_ddot", 3, shift=1)
    assert corr >= REAL_ACCEL_CORR


# --------------------------------------------------------------------------- bad input


def test_missing_and_corrupt_videos_are_clear_errors(tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        read_video(tmp_path / "absent.mp4")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 200)
    with pytest.raises(VideoError, match="cannot be decoded"):
        read_video(corrupt)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(VideoError, match="cannot be decoded"):
        read_video(empty)


def test_truncated_video_is_a_clear_error(tmp_path):
    path, _ = render(tmp_path, Scene(distractor=False), seconds=1.0)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(VideoError, match="cannot be decoded"):
        read_video(truncated)


def test_too_short_and_markerless_videos_stop_without_output(tmp_path):
    path, _ = render(tmp_path, Scene(distractor=False), seconds=1.0)
    out = tmp_path / "markers.csv"
    with pytest.raises(VideoError, match="frames, at least 100 needed"):
        stages.track_markers(path, {}, 100, out)
    green = {"blue": [0, 200, 0], "red": [0, 180, 40]}
    with pytest.raises(VideoError, match="never seen together|markers found in only"):
        stages.track_markers(path, green, 10, out)
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["clock.mp4"]


def markers_table(rows: int = 200) -> pd.DataFrame:
    theta = 0.1 * np.sin(np.arange(rows) / 10)
    blue, red = marker_positions(Scene(), theta)
    return pd.DataFrame({"frame": np.arange(rows), "blue_x": blue[:, 0], "blue_y": blue[:, 1],
                         "red_x": red[:, 0], "red_y": red[:, 1]})


SETTINGS = {"frame_interval": 0.0335, "savgol": {"window": 31, "order": 4}, "max_gap": 5,
            "detrend_degree": 3}


@pytest.mark.parametrize("write, message", [
    (lambda p: p.write_text(""), "cannot be read"),
    (lambda p: markers_table().drop(columns="red_y").to_csv(p, index=False), "lacks columns"),
    (lambda p: markers_table(40).to_csv(p, index=False), "has 40 rows"),
    (lambda p: markers_table().assign(red_x=np.nan).to_csv(p, index=False),
     "not found in any frame"),
    (lambda p: markers_table().assign(red_x=lambda m: m.red_x.where(
        (m.frame < 50) | (m.frame > 60))).to_csv(p, index=False), "missing for 11 consecutive"),
])
def test_bad_markers_tables_stop_without_output(tmp_path, write, message):
    table, out = tmp_path / "markers.csv", tmp_path / "angles.csv"
    write(table)
    with pytest.raises(MarkersError, match=message):
        stages.pendulum_angles(table, SETTINGS, out)
    assert not out.exists()

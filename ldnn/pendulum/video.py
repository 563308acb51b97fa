"""Reading and writing videos (H.264 mp4 by the ffmpeg binary of imageio-ffmpeg)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import imageio_ffmpeg
import numpy as np

from ldnn.io import atomic_path


class VideoError(ValueError):
    """A video that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    width: int
    height: int
    frames: int


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float, crf: int = 17) -> None:
    """Encode uint8 frames (H, W, 3), H and W multiples of 16, as H.264 (yuv420p), atomically."""
    frames = iter(frames)
    first = next(frames)
    height, width = first.shape[:2]
    with atomic_path(path) as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp), (width, height), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
            macro_block_size=16, output_params=["-crf", str(crf), "-f", "mp4"], ffmpeg_log_level="error")
        writer.send(None)
        writer.send(np.ascontiguousarray(first))
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()


def read_video(path: str | Path) -> tuple[VideoInfo, Iterator[np.ndarray]]:
    """The video's frame rate, size and frame count, and its frames as uint8 (H, W, 3)."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video {path}: no such file")
    try:
        reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        meta = reader.__next__()
        n_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (RuntimeError, OSError, StopIteration) as error:
        raise VideoError(f"video {path}: cannot be decoded ({str(error).splitlines()[0]})") \
            from None
    width, height = meta["size"]
    info = VideoInfo(float(meta["fps"]), int(width), int(height), int(n_frames))

    def frames() -> Iterator[np.ndarray]:
        for raw in reader:
            yield np.frombuffer(raw, np.uint8).reshape(height, width, 3)

    return info, frames()

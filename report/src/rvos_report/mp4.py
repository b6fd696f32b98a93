"""Video files through PyAV: overlay videos out (H.264 mp4 that browsers play), a user's clip in."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rvos_core.atomic import atomic_path
from rvos_core.errors import InputError

if TYPE_CHECKING:
    import av.container


def write_mp4(path: Path, frames: Iterable[np.ndarray], fps: float) -> int:
    """Encode uint8 RGB frames [H, W, 3] (one size, H and W even) as H.264 (yuv420p) into ``path``,
    atomically; returns the number of frames."""
    import av

    count = 0
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        stream = None
        for frame in frames:
            if stream is None:
                stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "23", "preset": "veryfast"}
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            count += 1
        if stream is None:
            raise ValueError(f"{path}: no frames to write")
        container.mux(stream.encode(None))
    return count


@dataclass(frozen=True)
class DecodedFrame:
    """One decoded frame: its index in the file, uint8 RGB [H, W, 3]."""

    index: int
    rgb: np.ndarray


def _open(path: Path) -> av.container.InputContainer:
    """The file opened for reading; a missing or unreadable file is an InputError naming it."""
    import av

    if not path.is_file():
        raise InputError(path, "video file does not exist")
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise InputError(path, f"not a readable video: {exc}") from None
    if not container.streams.video:
        container.close()
        raise InputError(path, "has no video stream")
    return container


def frame_rate(path: Path) -> float | None:
    """Frames a second of the first video stream of ``path`` (None when the file does not say)."""
    with _open(path) as container:
        rate = container.streams.video[0].average_rate
    return float(rate) if rate else None


def decode_video(path: Path) -> Iterator[DecodedFrame]:
    """Every frame of the first video stream of ``path``, in order; an unreadable file or one
    without a video stream is an InputError naming it."""
    import av

    with _open(path) as container:
        stream = container.streams.video[0]
        try:
            for index, frame in enumerate(container.decode(stream)):
                yield DecodedFrame(index, frame.to_ndarray(format="rgb24"))
        except av.FFmpegError as exc:
            raise InputError(path, f"video cannot be decoded: {exc}") from None

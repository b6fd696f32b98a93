"""What every propagation command reads from its input run, and its fallback for an empty key mask.

Shared by ``rvos_vos.propagate`` (AOT / DeAOT) and ``rvos_vos.propagate_trackers`` (the library
trackers): each expression's key frame (the input run's ``key_frame.json``, checked against its
scores) and key mask PNG (checked against the frame size), read before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rvos_core.data import Dataset, Video
from rvos_core.errors import InputError
from rvos_core.masks import decode_mask_png
from rvos_core.runfolder import Run, VideoWriter, check_key_frames, key_frame_index

PRODUCER = "rvos_vos.propagate"
# --precision amp is upstream's --amp: fp16 autocast on the GPU.
PRECISION_ALIASES = {"amp": "fp16"}


@dataclass(frozen=True)
class Job:
    """One expression of one video: its key frame and the input run's key mask (file and bytes)."""

    exp_id: str
    key: int
    key_path: Path
    key_png: bytes


def read_jobs(run: Run, video: Video, key_frames: dict[str, Any]) -> list[Job]:
    """The video's expressions with their key frames and key masks; checks sizes and scores."""
    size = video.checked_frame_size()
    scores = run.scores(video) if run.has_scores else None
    jobs = []
    for exp_id in video.exp_ids:
        key = key_frames[video.id][exp_id]["index_info"]["class_index"]
        path = run.mask_path(video.id, exp_id, video.frames[key])
        data = read_png(path, size, f"the frames of video {video.id}")
        if scores is not None and key_frame_index(scores[exp_id]) != key:
            raise InputError(
                run.root / "key_frame.json",
                f"{video.id}/{exp_id}: key frame {key} is not the first maximum of its scores",
            )
        jobs.append(Job(exp_id, key, path, data))
    return jobs


def read_png(path: Path, size: tuple[int, int], what: str) -> bytes:
    """The bytes of a run-folder mask PNG, checked (mode 'L', 0/255) and of size ``size``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(path, "mask PNG is missing") from None
    shape = decode_mask_png(data, path).shape
    if shape != size:
        raise InputError(path, f"mask is {shape[0]}x{shape[1]} but {what} are {size[0]}x{size[1]}")
    return data


def check_inputs(run: Run, dataset: Dataset, videos: Sequence[Video]) -> dict[str, list[Job]]:
    """The jobs of ``videos``, after checking the input run against the split."""
    run.check_dataset(dataset)
    key_frames = check_key_frames(run.key_frames(), dataset, run.root / "key_frame.json")
    return {video.id: read_jobs(run, video, key_frames) for video in videos}


def copy_masks(run: Run, video: Video, job: Job, out: VideoWriter, size: tuple[int, int]) -> None:
    """Upstream's fallback for an empty key mask: the input run's masks, byte for byte."""
    for t, frame in enumerate(video.frames):
        if t == job.key:
            continue
        path = run.mask_path(video.id, job.exp_id, frame)
        data = read_png(path, size, f"the frames of video {video.id}")
        out.write_png(job.exp_id, t, data, size)

"""The frames of one training sequence: a reference frame, then frames at random gaps after it.

Upstream: github:yoxu515/aot-benchmark @ 601c138435a1764eb01404f3495b914e6e2e8eca,
dataloaders/train_datasets.py (VOSTrain.sample_sequence with enable_prev_frame False,
reverse_seq, get_ref_index_v2, get_curr_gaps, get_curr_indices, check_index, get_image_label).
The video's frame list is reversed with p 1/2; up to five tries: T - 1 gaps uniform in
1..``max_gap``, a reference frame drawn uniformly (up to 20 draws until its annotation has more
than 200 foreground pixels, else the first frame), the later frames at the cumulated gaps after it,
reflected at the video's ends; a try is kept when every object of the later frames is in the
reference frame (the last try is kept anyway). Frame 1 (upstream's ``prev_img``) is the first
frame after the reference, frames 2.. the ``curr_img`` list.
Known differences: a missing or unreadable frame or annotation, or an annotation of another size
than its frame, is an InputError naming the file (upstream skips a missing reference annotation,
falls back to another file for a later one, and crashes on the others).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rvos_core.errors import InputError
from rvos_train.data.referrals import check_size, read_label_png
from rvos_train.data.vos.layouts import VideoEntry
from rvos_vos.views import read_frame

SEQUENCE_TRIES = 5
REFERENCE_DRAWS = 20
REFERENCE_PIXELS = 200


def reflect(index: int, length: int) -> int:
    """``index`` mirrored into [0, length) at both ends (upstream's check_index)."""
    if length <= 1:
        return 0
    while not 0 <= index < length:
        index = -index if index < 0 else 2 * (length - 1) - index
    return index


@dataclass
class _Labels:
    """The annotations of one video read at most once each, by position in ``order``."""

    video: VideoEntry
    order: np.ndarray
    read: dict[int, np.ndarray] = field(default_factory=dict)

    def __call__(self, position: int) -> np.ndarray:
        if position not in self.read:
            self.read[position] = read_label_png(self.video.labels[self.order[position]])
        return self.read[position]


def sample_indices(
    video: VideoEntry, num_frames: int, max_gap: int, reverse: bool, rng: np.random.Generator
) -> tuple[np.ndarray, _Labels]:
    """int [num_frames] indices into the video's frames (reference first), and the labels read."""
    length = len(video.frames)
    order = np.arange(length)
    if reverse and rng.integers(2):
        order = order[::-1]
    labels = _Labels(video, order)
    for _ in range(SEQUENCE_TRIES):
        gaps = rng.integers(1, max_gap + 1, num_frames - 1)
        reference = _reference(labels, length, rng)
        later = [reflect(int(i), length) for i in reference + np.cumsum(gaps)]
        present = set(np.unique(labels(reference)).tolist())
        if all(set(np.unique(labels(i)).tolist()) <= present for i in later):
            break
    return np.array([reference, *later]), labels


def _reference(labels: _Labels, length: int, rng: np.random.Generator) -> int:
    """A position whose annotation has more than 200 foreground pixels, within 20 draws; else 0."""
    if length <= 1:
        return 0
    refused: set[int] = set()
    for _ in range(REFERENCE_DRAWS):
        position = int(rng.integers(length))
        if position in refused:
            continue
        if np.count_nonzero(labels(position)) > REFERENCE_PIXELS:
            return position
        refused.add(position)
    return 0


def load_sequence(
    video: VideoEntry, num_frames: int, max_gap: int, reverse: bool, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """frames float32 [T, H, W, 3] (RGB 0..255, OpenCV-decoded) and labels uint8 [T, H, W] of one
    drawn sequence, reference frame first."""
    positions, labels = sample_indices(video, num_frames, max_gap, reverse, rng)
    frames = []
    for position in positions.tolist():
        path = video.frames[labels.order[position]]
        frames.append(read_frame(path))
        if frames[-1].shape != frames[0].shape:
            (h, w), (h0, w0) = frames[-1].shape[:2], frames[0].shape[:2]
            raise InputError(path, f"frame is {w}x{h}, other frames of the video are {w0}x{h0}")
        label_path = video.labels[labels.order[position]]
        check_size(label_path, labels(position).shape, frames[-1].shape[:2], "annotation")
    return np.stack(frames), np.stack([labels(p) for p in positions.tolist()])

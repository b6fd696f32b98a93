"""Dynamic merge: a second sequence's objects pasted over the first, frame by frame.

Upstream: github:yoxu515/aot-benchmark @ 601c138435a1764eb01404f3495b914e6e2e8eca,
dataloaders/train_datasets.py (``_merge_sample``, min_obj_pixels 100). Where the second
sequence's labels are foreground its pixels and ids (shifted by ``max_objects``) replace the
first's; the ids with more than 100 pixels in the reference frame (frame 0) are kept (a random
subset of ``max_objects`` of them, in random order, when more) and renumbered 1..n in every frame;
the pixels of the others become background.
Known differences: none in the result (upstream merges normalised tensors, here the 0..255 frames
before normalisation; the pixel choice is the same).
"""

from __future__ import annotations

import numpy as np

from rvos_train.data.vos.augment import MIN_OBJECT_PIXELS


def merge(
    first: tuple[np.ndarray, np.ndarray],
    second: tuple[np.ndarray, np.ndarray],
    max_objects: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, int]:
    """(frames float32 [T, H, W, 3], labels uint8 [T, H, W]) twice, of one size -> the merged
    frames, labels renumbered 1..n, and n."""
    (frames_a, labels_a), (frames_b, labels_b) = first, second
    over = labels_b > 0
    frames = np.where(over[..., None], frames_b, frames_a)
    ids = np.where(over, labels_b.astype(np.int64) + max_objects, labels_a)
    counts = np.bincount(ids[0].ravel(), minlength=2 * max_objects + 1)
    kept = np.flatnonzero(counts[1:] > MIN_OBJECT_PIXELS) + 1
    if len(kept) > max_objects:
        kept = rng.permutation(kept)[:max_objects]
    table = np.zeros(max(ids.max(), 2 * max_objects) + 1, np.uint8)
    table[kept] = np.arange(1, len(kept) + 1)
    return frames.astype(np.float32), table[ids], len(kept)

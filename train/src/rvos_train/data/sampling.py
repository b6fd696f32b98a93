"""Which frames of a video make a training clip: ReferFormer's local + global draw around an anchor,
and SOC's fixed windows.

Upstream: github:RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85da0719b32ea45253f8b3077defea6,
ReferFormer/datasets/ytvos.py (prepare_metas: one sample per expression and anchor
``range(0, len, num_frames)``; __getitem__: the anchor, one frame 1..3 before and one 1..3 after
it, and num_frames - 3 frames drawn from outside that span), the same code in MUTR/datasets/ytvos.py
and MeViS's ReferFormer_dataset.py; soc_test/datasets/refer_youtube_vos/refer_youtube_vos_dataset.py
(generate_train_video_samples: consecutive windows, the last one moved back or padded to full
length, only windows in which the referred object appears). Known differences: upstream's
"outside" list keeps the last frame of the local span and drops the first; reproduced. When a video
is so short that upstream's last resort draws more frames than it has (random.sample fails), the
draw is with replacement here. SOC decides whether the object appears in a window by reading every
annotation PNG once and caches the result in a JSON file; here meta.json's object frames say it
(Referral.present), with nothing cached.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LocalGlobal:
    """ReferFormer's clip of ``num_frames`` frames drawn around ``anchor`` in a video of ``length``
    frames; ``max_skip`` bounds the local offsets (upstream: 3, hard-coded)."""

    anchor: int
    length: int
    num_frames: int
    max_skip: int = 3

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        """int64 [num_frames]: frame indices, sorted, possibly repeated."""
        picks = [self.anchor]
        if self.num_frames > 1:
            before, after = rng.integers(1, self.max_skip + 1, size=2)
            picks += [max(0, self.anchor - before), min(self.length - 1, self.anchor + after)]
        if self.num_frames > 3:
            picks += self._global(min(picks), max(picks), rng).tolist()
        return np.sort(np.asarray(picks, np.int64))[: self.num_frames]

    def _global(self, low: int, high: int, rng: np.random.Generator) -> np.ndarray:
        """num_frames - 3 frames, from outside the local span when there are enough."""
        need = self.num_frames - 3
        outside = np.r_[0:low, high : self.length]
        if outside.size > need:
            return rng.choice(outside, need, replace=False)
        if self.length >= need:
            return rng.choice(self.length, need, replace=False)
        extra = need - self.length
        return np.r_[
            np.arange(self.length), rng.choice(self.length, extra, replace=extra > self.length)
        ]

    def reachable(self) -> range:
        """The frames some draw can contain."""
        if self.num_frames > 3:
            return range(self.length)
        first = max(0, self.anchor - self.max_skip)
        if self.num_frames == 3:
            return range(first, min(self.length, self.anchor + self.max_skip + 1))
        return range(first if self.num_frames == 2 else self.anchor, self.anchor + 1)


@dataclass(frozen=True)
class Window:
    """SOC's fixed window of frame indices."""

    indices: tuple[int, ...]

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        """int64 [window]: the window (no randomness)."""
        return np.asarray(self.indices, np.int64)

    def reachable(self) -> tuple[int, ...]:
        return self.indices


def referformer_anchors(length: int, num_frames: int) -> range:
    """The anchors of one expression: every num_frames-th frame."""
    return range(0, length, num_frames)


def soc_windows(length: int, size: int) -> list[tuple[int, ...]]:
    """Consecutive windows of ``size`` frames covering ``length`` frames; a short last window is
    replaced by the last ``size`` frames, or, in a video shorter than ``size``, padded with its last
    frame."""
    windows = [tuple(range(s, min(s + size, length))) for s in range(0, length, size)]
    last = windows[-1]
    if len(last) < size:
        padded = last + (last[-1],) * (size - len(last))
        windows[-1] = tuple(range(length - size, length)) if length >= size else padded
    return windows

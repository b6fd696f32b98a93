"""What the report's parts pass each other: the settings every video job shares (``Layout``) and
what one expression's work gives the index and its page (``ExpressionResult``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rvos_report.sources import Node


@dataclass(frozen=True)
class Layout:
    """What every video job of one report shares.

    Attributes:
        out: the staged report folder.
        frames: how many frames of an expression are shown (evenly spread, plus the key frames).
        tile_width: pixels of one tile (a frame with one node's mask).
        fps: frame rate of the overlay videos.
    """

    out: Path
    nodes: tuple[Node, ...]
    frames: int
    tile_width: int
    fps: float


@dataclass(frozen=True)
class ExpressionResult:
    """What the index and the expression's page show of one expression.

    Attributes:
        key_frames: per node, its key frame (None for a run without scores).
        j, f: per node, J and F of every frame [T] (None without ground truth).
        disputed: per vote among the nodes (by node index), the share of each frame's pixels
            held by some of its runs but not all (of the pixels any run holds), [T].
        agreement: mean over frames of the mean pairwise IoU of the nodes' masks (1 for one node).
        shown: the frame indices drawn on the page.
    """

    video: str
    exp_id: str
    text: str
    frames: tuple[str, ...]
    key_frames: tuple[int | None, ...]
    j: tuple[tuple[float, ...], ...] | None
    f: tuple[tuple[float, ...], ...] | None
    disputed: dict[int, tuple[float, ...]]
    agreement: float
    shown: tuple[int, ...]

    @property
    def jf(self) -> tuple[float, ...] | None:
        """Per node, J&F of the expression (the mean of its frames' J and F)."""
        if self.j is None or self.f is None:
            return None
        return tuple((np.mean(j) + np.mean(f)) / 2 for j, f in zip(self.j, self.f, strict=True))

    @property
    def badness(self) -> float:
        """Sort key of "worst first": 1 - J&F of the last node with ground truth, else the
        disagreement of the nodes (1 - agreement)."""
        jf = self.jf
        return 1.0 - (jf[-1] if jf is not None else self.agreement)

"""The report's work on one video (a worker's unit): per expression, read every node's masks
(and the ground truth, and the inputs of the votes), score them frame by frame, draw the frames
that are shown and write the expression's page; on request, the overlay video of an expression.

Files written under the staged report folder ``out``:
``img/<video>/<exp_id>/<t>.jpg`` (the tiles of frame t side by side), ``e/<video>/<exp_id>.html``
and ``mp4/<video>/<exp_id>.mp4``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from rvos_core.data import Video, open_image
from rvos_core.runfolder import Run
from rvos_eval.metrics import video_jf
from rvos_report import pages, render
from rvos_report.mp4 import write_mp4
from rvos_report.results import ExpressionResult, Layout
from rvos_report.sources import Truth


@dataclass(frozen=True)
class VideoJob:
    """One video; ``key_frames[i]``: exp_id -> key frame of node i (empty without scores);
    ``truth``: the video's ground truth, if any."""

    layout: Layout
    video: Video
    key_frames: tuple[dict[str, int], ...]
    truth: Truth | None = None


@dataclass(frozen=True)
class ExpressionMasks:
    """The masks of one expression, bool [T, H, W] each; ``votes[i]``: (uint8 [T, H, W] count of
    the vote's runs holding each pixel, number of runs) of the vote that is node i."""

    truth: np.ndarray | None
    nodes: tuple[np.ndarray, ...]
    votes: dict[int, tuple[np.ndarray, int]]


def load_masks(job: VideoJob, exp_id: str) -> ExpressionMasks:
    video = job.video
    nodes = tuple(Run(node.root).masks(video, exp_id) for node in job.layout.nodes)
    shape = nodes[0].shape[1:]
    truth = None if job.truth is None else job.truth.masks(video, exp_id, shape)
    votes = {}
    for i, node in enumerate(job.layout.nodes):
        if node.vote_inputs:
            inputs = [Run(root).masks(video, exp_id, shape) for root in node.vote_inputs]
            votes[i] = (np.sum(inputs, axis=0, dtype=np.uint8), len(inputs))
    return ExpressionMasks(truth, nodes, votes)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool masks; 1 when both are empty."""
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def agreement(nodes: tuple[np.ndarray, ...]) -> float:
    """Mean over frames of the mean pairwise IoU of the masks [T, H, W] of the nodes."""
    pairs = list(combinations(nodes, 2))
    if not pairs:
        return 1.0
    return float(np.mean([[iou(a[t], b[t]) for a, b in pairs] for t in range(len(nodes[0]))]))


def disputed_share(votes: np.ndarray, runs: int) -> tuple[float, ...]:
    """Per frame of a count map [T, H, W]: pixels some runs hold but not all / pixels any holds."""
    held = np.count_nonzero(votes > 0, axis=(1, 2))
    disputed = np.count_nonzero((votes > 0) & (votes < runs), axis=(1, 2))
    return tuple(float(d / h) if h else 0.0 for d, h in zip(disputed, held, strict=True))


def shown_frames(total: int, count: int, keys: tuple[int | None, ...]) -> tuple[int, ...]:
    """``count`` frame indices spread evenly over ``total`` frames, with every key frame."""
    spread = np.linspace(0, total - 1, min(count, total)).round().astype(int).tolist()
    return tuple(sorted({*spread, *(k for k in keys if k is not None)}))


def composite(
    layout: Layout, masks: ExpressionMasks, frame: np.ndarray, t: int, keys: tuple[int | None, ...]
) -> np.ndarray:
    """Frame ``t`` (uint8 [H, W, 3]) drawn once per tile: the truth, every node (its key frame
    marked), every vote's view; uint8 [h, n w + gaps, 3]."""
    size = render.tile_size(frame.shape[:2], layout.tile_width)
    small = render.scale_frame(frame, size)
    tiles = []
    if masks.truth is not None:
        tiles.append(render.overlay(small, render.scale_mask(masks.truth[t], size), render.TRUTH))
    for node, mask, key in zip(layout.nodes, masks.nodes, keys, strict=True):
        tile = render.overlay(small, render.scale_mask(mask[t], size), node.colour)
        tiles.append(render.mark_key_frame(tile) if key == t else tile)
    for i, (votes, runs) in masks.votes.items():
        counts = render.scale_frame(votes[t], size)  # area average of counts, then nearest count
        tiles.append(
            render.vote_view(small, counts, runs, render.scale_mask(masks.nodes[i][t], size))
        )
    return render.side_by_side(tiles)


def _frame(video: Video, t: int) -> np.ndarray:
    return np.asarray(open_image(video.frame_path(video.frames[t])))


def expression(job: VideoJob, exp_id: str, text: str) -> ExpressionResult:
    """Score one expression, draw its shown frames and write its page."""
    layout, video = job.layout, job.video
    masks = load_masks(job, exp_id)
    keys = tuple(table.get(exp_id) for table in job.key_frames)
    shown = shown_frames(len(video.frames), layout.frames, keys)
    for t in shown:
        image = composite(layout, masks, _frame(video, t), t, keys)
        render.write_jpeg(layout.out / pages.image_path(video.id, exp_id, t), image)
    j = f = None
    if masks.truth is not None:
        scores = [video_jf(masks.truth, node) for node in masks.nodes]
        j = tuple(tuple(s[0].tolist()) for s in scores)
        f = tuple(tuple(s[1].tolist()) for s in scores)
    result = ExpressionResult(
        video=video.id,
        exp_id=exp_id,
        text=text,
        frames=video.frames,
        key_frames=keys,
        j=j,
        f=f,
        disputed={i: disputed_share(v, runs) for i, (v, runs) in masks.votes.items()},
        agreement=agreement(masks.nodes),
        shown=shown,
    )
    pages.write_expression_page(layout, result, has_video=False)
    return result


def report_video(job: VideoJob) -> list[ExpressionResult]:
    """Every expression of the job's video (the pool's task)."""
    return [expression(job, e.id, e.text) for e in job.video.expressions]


@dataclass(frozen=True)
class MovieJob:
    """The overlay video of one expression (its result from the first pass)."""

    job: VideoJob
    result: ExpressionResult


def overlay_video(movie: MovieJob) -> None:
    """Write the expression's overlay mp4 (every frame, tiles as on its page) and its page again,
    now with the video."""
    layout, video, result = movie.job.layout, movie.job.video, movie.result
    masks = load_masks(movie.job, result.exp_id)
    frames = (
        composite(layout, masks, _frame(video, t), t, result.key_frames)
        for t in range(len(video.frames))
    )
    write_mp4(layout.out / pages.video_path(video.id, result.exp_id), frames, layout.fps)
    pages.write_expression_page(layout, result, has_video=True)

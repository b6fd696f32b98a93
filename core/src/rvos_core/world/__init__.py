"""The generated referring-video world (docs/world.md): videos of a few shaped, coloured, textured
objects that move, stop, start, enter, leave and hide one another, with referring expressions
that single out their targets, written in the real datasets' layouts (``layouts``).

Everything is a function of the seed and the video id: ``draw_video(seed, "train007", ...)`` is the
same video on every machine. VERSION names the world's rules; it changes whenever a change to this
package changes what a seed draws.
"""

from __future__ import annotations

import numpy as np

from rvos_core.errors import ConfigError
from rvos_core.world.grammar import descriptions
from rvos_core.world.scene import Video, background, draw_things, draw_track, render

VERSION = "world-2.0"
OBJECTS = (2, 5)  # objects per video, least and most
ATTEMPTS = 200
DESCRIPTIONS = 4  # different expressions every object must have (Ref-DAVIS asks for four)


def video_rng(seed: int, video_id: str, purpose: str) -> np.random.Generator:
    """The generator of one ``purpose`` ("video", "refytvos", ...) of one video."""
    return np.random.default_rng([seed, *video_id.encode(), 0, *purpose.encode()])


def _acceptable(video: Video) -> bool:
    """Every object shows in two frames or more and DESCRIPTIONS expressions single it out."""
    return all(
        video.shown(k).sum() >= 2 and len(descriptions(k, video.things)) >= DESCRIPTIONS
        for k in range(len(video.things))
    )


def draw_video(seed: int, video_id: str, frames: int, size: tuple[int, int]) -> Video:
    """One video of ``frames`` frames of ``size`` (H, W): objects drawn (distractors sharing
    attributes), put on tracks and rendered until every object shows and can be named
    (``_acceptable``); a ConfigError when ATTEMPTS draws are not enough."""
    rng = video_rng(seed, video_id, "video")
    for _ in range(ATTEMPTS):
        things = draw_things(rng, int(rng.integers(OBJECTS[0], OBJECTS[1] + 1)))
        tracks = [draw_track(t, rng, size, frames) for t in things]
        if any(track is None for track in tracks):
            continue
        depth = [int(k) for k in rng.permutation(len(things))]
        video = render(video_id, things, tracks, depth, background(rng, size), frames)
        if _acceptable(video):
            return video
    raise ConfigError(
        f"no acceptable video {video_id} in {ATTEMPTS} draws (seed {seed}, {frames} frames of "
        f"{size[0]}x{size[1]}): try more frames or a larger size"
    )


__all__ = ["VERSION", "Video", "draw_video", "video_rng"]

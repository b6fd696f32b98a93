"""The stage runner: every stage that writes a run folder is a Stage handed to ``run_stage``.

The runner owns the sequence (docs/architecture.md, "Stages"): refuse an output inside an input,
refuse an empty split, refuse a complete run made with other settings (or say there is nothing
to do), pick the shard's videos, let the stage check its inputs, prepare the stage when videos
are left (e.g. load a network), open the writer, write each video left through the stage's
per-video function (in worker processes when asked), finalize and print one line.
A stage supplies its run record (what run.json says) and what it does to one video.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from rvos_core.data import Dataset, Video
from rvos_core.parallel import for_each_video
from rvos_core.runfolder import (
    RunRecord,
    RunWriter,
    VideoWriter,
    check_finished,
    check_output,
    videos_to_do,
)
from rvos_core.shard import select_shard


class Stage(ABC):
    """One stage: subclasses set ``name`` and ``record`` and write one video.

    A stage run in worker processes (``Target.workers`` > 1) must be picklable.

    Attributes:
        name: what the progress bar shows.
        record: what run.json records of the run.
        inputs: the folders the stage reads, which the output must not be or be inside.
    """

    name: str
    record: RunRecord
    inputs: Sequence[Path] = ()

    def check(self, dataset: Dataset, videos: Sequence[Video]) -> None:
        """Check the inputs of the shard's ``videos`` of ``dataset`` before anything is written."""
        return None

    def prepare(self, videos: Sequence[Video]) -> None:
        """Get ready to write ``videos`` (called only when some are left), e.g. load a network."""
        return None

    @abstractmethod
    def write_video(self, out: VideoWriter) -> None:
        """Write every expression of ``out.video``; ``out`` commits it when this returns."""

    def key_frames(self) -> Mapping[str, Any] | None:
        """Key frames (upstream layout) for a run without scores, else None (from the scores)."""
        return None


@dataclass(frozen=True)
class Target:
    """Where a stage writes: the run folder, the split, the shard ``(i, n)`` and the number of
    worker processes (1: in this process)."""

    out: Path
    dataset: Dataset
    shard: tuple[int, int] = (0, 1)
    workers: int = 1


def say(message: str) -> None:
    """The runner's one line (stderr: stdout stays free for tools)."""
    print(message, file=sys.stderr)


def write_video(writer: RunWriter, stage: Stage, video_id: str) -> None:
    """Claim one video of ``writer`` and let ``stage`` write it; nothing when another process
    wrote it meanwhile."""
    out = writer.claim_video(writer.dataset.video(video_id))
    if out is None:
        return
    with out:
        stage.write_video(out)


def run_stage(stage: Stage, target: Target) -> bool:
    """Run ``stage`` over the videos of the target's shard that are not done; True when the run
    is complete. Refused before anything is written: an output that is (or is inside) an input,
    an empty split, a complete run with other settings, and what ``stage.check`` refuses."""
    out, dataset = target.out, target.dataset
    check_output(out, stage.inputs)
    if check_finished(out, dataset, stage.record):
        say(f"{out} is complete (run.json); nothing to do")
        return True
    videos = select_shard(list(dataset.videos), target.shard)
    stage.check(dataset, [dataset.video(v) for v in videos])
    todo = videos_to_do(out, videos)
    if todo:
        stage.prepare([dataset.video(v) for v in todo])
    writer = RunWriter(out, dataset, stage.record)
    todo = writer.todo(todo)
    for_each_video(partial(write_video, writer, stage), todo, target.workers, desc=stage.name)
    complete = writer.finalize(stage.key_frames())
    state = "run complete" if complete else "shard done; other shards still have videos to do"
    say(f"{out}: {len(todo)} videos written; {state}")
    return complete

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from rvos_core.data import Dataset, Video
from rvos_core.parallel import map_work
from rvos_core.runfolder import (
    RunRecord,
    RunWriter,
    VideoWriter,
    check_finished,
    check_output,
    videos_to_do,
)
from rvos_core.shard import select_shard
from rvos_core.work import Work, executor


class Stage(ABC):
    """One stage: subclasses set ``name`` and ``record`` and write one video.

    A stage run in worker processes (``Target.workers`` > 1, or ``EXECUTOR=ray``) must be
    picklable; on Ray each worker prepares its own copy, the driver none.

    Attributes:
        name: what the progress bar shows.
        record: what run.json records of the run.
        inputs: the folders the stage reads, which the output must not be or be inside.
        gpu_fraction: the share of a GPU one Ray worker of the stage holds when it runs on a GPU.
    """

    name: str
    record: RunRecord
    inputs: Sequence[Path] = ()
    gpu_fraction: float = 1.0

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

    def on_gpu(self) -> bool:
        """Whether the stage computes on a GPU (its Ray workers then hold ``gpu_fraction``)."""
        return False


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


def prepared_task(
    writer: RunWriter, stage: Stage, video_ids: Sequence[str], prepare: bool
) -> Callable[[str], None]:
    """The per-video task of ``stage`` in a worker; the stage is first prepared for
    ``video_ids`` when asked (a Ray worker loads its own network, once)."""
    if prepare:
        stage.prepare([writer.dataset.video(v) for v in video_ids])
    return partial(write_video, writer, stage)


def video_cost(dataset: Dataset, video_id: str) -> int:
    """The size of a video's work: frames x expressions (at least one)."""
    video = dataset.video(video_id)
    return len(video.frames) * max(1, len(video.expressions))


def stage_work(stage: Stage, writer: RunWriter, video_ids: Sequence[str], prepare: bool) -> Work:
    """The videos ``video_ids`` of ``stage`` as work for an executor (rvos_core.parallel)."""
    return Work(
        partial(prepared_task, writer, stage, video_ids, prepare),
        video_ids,
        stage.name,
        cost=partial(video_cost, writer.dataset),
        gpus=stage.gpu_fraction if stage.on_gpu() else 0.0,
    )


def pending_videos(stage: Stage, target: Target) -> list[str] | None:
    """The shard's videos that ``stage`` has still to write into ``target.out``, sorted, after the
    checks of ``run_stage`` (nothing is written); None when the run is complete."""
    out, dataset = target.out, target.dataset
    check_output(out, stage.inputs)
    if check_finished(out, dataset, stage.record):
        say(f"{out} is complete (run.json); nothing to do")
        return None
    videos = select_shard(list(dataset.videos), target.shard)
    stage.check(dataset, [dataset.video(v) for v in videos])
    return videos_to_do(out, videos)


def finish_stage(stage: Stage, writer: RunWriter, written: int) -> bool:
    """Complete the run when every video is done and say so; True when it is complete."""
    complete = writer.finalize(stage.key_frames())
    state = "run complete" if complete else "shard done; other shards still have videos to do"
    say(f"{writer.root}: {written} videos written; {state}")
    return complete


def run_stage(stage: Stage, target: Target) -> bool:
    """Run ``stage`` over the videos of the target's shard that are not done; True when the run
    is complete. Refused before anything is written: an output that is (or is inside) an input,
    an empty split, a complete run with other settings, and what ``stage.check`` refuses."""
    todo = pending_videos(stage, target)
    if todo is None:
        return True
    dataset = target.dataset
    remote = executor() == "ray"  # Ray workers prepare their own copies of the stage
    if todo and not remote:
        stage.prepare([dataset.video(v) for v in todo])
    writer = RunWriter(target.out, dataset, stage.record)
    todo = writer.todo(todo)
    map_work(stage_work(stage, writer, todo, remote), target.workers)
    return finish_stage(stage, writer, len(todo))

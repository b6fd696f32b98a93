"""``python -m rvos_vos.propagate sam2|sam3_tracker|edgetam``: propagate a run's key-frame masks
with a library video tracker (SAM 2.1, the SAM 3 tracker, EdgeTAM; ``rvos_vos.trackers``).

The same stage as AOT / DeAOT (``rvos_vos.propagate``, whose input checks it uses): the input
run's key frames and key masks, every other frame predicted by the key-frame procedure
(``rvos_vos.tracking``: all expressions of a video in one pass, the ones sharing a key frame as
the objects of one session), the key masks copied byte for byte, an empty key mask copied from
the input run, the scores carried; sharded by video, resumable, checked before anything is written.
``--checkpoint`` is a folder in the Hugging Face layout (default: CHECKPOINTS/<the family's folder>).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel

from rvos_core.cli import add_dataset_args, dataset_from_args, path_arg
from rvos_core.command import Parser
from rvos_core.data import Dataset, Video
from rvos_core.masks import decode_mask_png
from rvos_core.paths import load_paths
from rvos_core.registry import PROPAGATORS, load
from rvos_core.runfolder import Run, RunRecord, VideoWriter
from rvos_core.runner import Stage, Target, run_stage
from rvos_core.shard import parse_shard
from rvos_nn.precision import check_precision, inference_context, resolve_device
from rvos_vos.key_inputs import PRECISION_ALIASES, PRODUCER, Job, check_inputs, copy_masks
from rvos_vos.trackers import TrackerFamily
from rvos_vos.tracking import KeyGroup, VideoTracker, track
from rvos_vos.views import read_frame


@dataclass(frozen=True)
class TrackerSettings:
    """One propagation run's settings.

    Attributes:
        family: the tracker; checkpoint: its weights folder.
        flip: add the mirrored view. offload_state: keep the sessions' memory on the CPU (it
            moves to the device when read; results do not change).
        shard: (i, n) of ``--shard i/n``.
    """

    family: TrackerFamily
    checkpoint: Path
    flip: bool = False
    offload_state: bool = False
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"
    shard: tuple[int, int] = (0, 1)

    def record(self) -> dict[str, Any]:
        """The configuration run.json records (and a resumed run must repeat)."""
        return {
            "propagator": self.family.name,
            "views": {"flip": self.flip},
            "precision": self.precision,
        }

    def tracker(self, model: PreTrainedModel, size: tuple[int, int]) -> VideoTracker:
        state = torch.device("cpu") if self.offload_state else self.device
        return VideoTracker(
            model, self.family, size, flip=self.flip, device=self.device, state_device=state
        )


def tracker_family(name: str) -> TrackerFamily | None:
    """The library tracker registered as ``name`` (None for another kind of propagator)."""
    found = load(PROPAGATORS, name, "propagator")
    return found if isinstance(found, TrackerFamily) else None


def _parser(family: TrackerFamily) -> argparse.ArgumentParser:
    parser = Parser(prog=f"python -m rvos_vos.propagate {family.name}", description=__doc__)
    parser.add_argument("propagator", choices=[family.name])
    parser.add_argument(
        "--checkpoint",
        type=path_arg,
        help=f"weights folder (default: CHECKPOINTS/{family.weights.folder}, "
        f"a copy of {family.weights.hub})",
    )
    parser.add_argument("--run", type=path_arg, required=True, help="the input run folder")
    parser.add_argument("--out", type=path_arg, required=True, help="the run folder to write")
    add_dataset_args(parser)
    parser.add_argument(
        "--flip", action="store_true", help="add the mirrored view (twice the cost)"
    )
    compute = parser.add_argument_group("compute")
    compute.add_argument(
        "--offload-state",
        action="store_true",
        help="keep the tracking memory on the CPU (less device memory, same masks)",
    )
    compute.add_argument("--device", default="cpu", help="cpu or cuda")
    compute.add_argument(
        "--precision",
        default="fp32",
        help="fp32 (default), bf16 or fp16 (cuda) autocast; amp = fp16 (as for AOT)",
    )
    return parser


def settings_from_args(family: TrackerFamily, args: argparse.Namespace) -> TrackerSettings:
    device = resolve_device(args.device)
    checkpoint = load_paths().checkpoint(
        args.checkpoint, family.weights.folder, f"propagator {family.name}"
    )
    return TrackerSettings(
        family=family,
        checkpoint=checkpoint,
        flip=args.flip,
        offload_state=args.offload_state,
        device=device,
        precision=check_precision(PRECISION_ALIASES.get(args.precision, args.precision), device),
        shard=parse_shard(args.shard),
    )


def track_video(
    model: PreTrainedModel,
    settings: TrackerSettings,
    run: Run,
    jobs: Sequence[Job],
    out: VideoWriter,
) -> None:
    """Write every expression of ``out.video`` (module docstring)."""
    video = out.video
    size = video.checked_frame_size()
    by_key: dict[int, list[tuple[Job, np.ndarray]]] = {}
    for job in jobs:
        key_mask = decode_mask_png(job.key_png, job.key_path, size)
        out.write_png(job.exp_id, job.key, job.key_png, size)
        if key_mask.any():
            by_key.setdefault(job.key, []).append((job, key_mask))
        else:
            copy_masks(run, video, job, out, size)
    if by_key:
        write_tracked(model, settings, video, sorted(by_key.items()), out)
    if run.has_scores:
        scores = run.scores(video)
        for job in jobs:
            out.write_scores(job.exp_id, scores[job.exp_id])


def write_tracked(
    model: PreTrainedModel,
    settings: TrackerSettings,
    video: Video,
    keyed: list[tuple[int, list[tuple[Job, np.ndarray]]]],
    out: VideoWriter,
) -> None:
    """Track the expressions of ``keyed`` (key frame -> its jobs and bool [H, W] key masks)."""
    tracker = settings.tracker(model, video.checked_frame_size())
    groups = [KeyGroup(k, torch.from_numpy(np.stack([m for _, m in items]))) for k, items in keyed]
    paths = video.frame_paths()

    def frames(t: int) -> list[torch.Tensor]:
        return tracker.pixels(torch.from_numpy(np.ascontiguousarray(read_frame(paths[t]))))

    for g, t, probs in track(tracker, groups, frames, len(video.frames)):
        masks = (probs > 0.5).cpu().numpy()
        for (job, _), mask in zip(keyed[g][1], masks, strict=True):
            out.write_mask(job.exp_id, t, mask)


@dataclass
class TrackerStage(Stage):
    """A tracker propagation of ``run`` as a stage of rvos_core.runner."""

    settings: TrackerSettings
    run: Run
    jobs: dict[str, list[Job]] = field(default_factory=dict)
    model: PreTrainedModel | None = None

    @property
    def name(self) -> str:
        return f"{self.settings.family.name} {self.run.name}"

    @property
    def inputs(self) -> Sequence[Path]:
        return (self.run.root,)

    @cached_property
    def record(self) -> RunRecord:
        return RunRecord(
            producer=f"{PRODUCER} {self.settings.family.name}",
            value_domain="binary",
            has_scores=self.run.has_scores,
            has_probs=False,
            inputs=(self.run.input_record(),),
            checkpoint=self.settings.family.weights.record(self.settings.checkpoint),
            config={**self.settings.record(), "key_frames": "input run's key_frame.json"},
        )

    def check(self, dataset: Dataset, videos: Sequence[Video]) -> None:
        self.jobs = check_inputs(self.run, dataset, videos)

    def prepare(self, videos: Sequence[Video]) -> None:
        self.model = self.settings.family.weights.load(self.settings.checkpoint).to(
            self.settings.device
        )

    def on_gpu(self) -> bool:
        return self.settings.device.type == "cuda"

    def write_video(self, out: VideoWriter) -> None:
        assert self.model is not None, "prepare() loads the model"
        with inference_context(self.settings.device, self.settings.precision):
            track_video(self.model, self.settings, self.run, self.jobs[out.video.id], out)

    def key_frames(self) -> Mapping[str, Any]:
        return self.run.key_frames()


def propagate(run: Path, dataset: Dataset, out: Path, settings: TrackerSettings) -> bool:
    """Propagate run ``run`` into run ``out``; True when the output run is complete."""
    return run_stage(TrackerStage(settings, Run(run)), Target(out, dataset, settings.shard))


def main_body(family: TrackerFamily, argv: Sequence[str]) -> int:
    """The command for ``family`` (``rvos_vos.propagate.main`` hands it over)."""
    args = _parser(family).parse_args(argv)
    propagate(args.run, dataset_from_args(args), args.out, settings_from_args(family, args))
    return 0

"""``python -m rvos_vos.propagate aot|deaot``: propagate a run's key-frame masks with AOT or DeAOT.

Reads a complete run folder (its ``key_frame.json``, key-frame masks, scores) and the dataset's
frames; writes a new run folder: every frame of every expression, the key frame's mask copied
byte for byte from the input run, every other frame predicted by the competition's bidirectional
6-view procedure (``rvos_vos.procedure``). An empty key mask makes the expression a copy of the
input run's masks (upstream's fallback). The input run's scores are carried, so the output's
key_frame.json is the input's. A stage of rvos_core.runner: sharded by video, resumable, one
progress bar with ETA; the network is loaded only when videos are left.

Bad input (a run or frame missing, a key frame out of range, frames of another size than the
masks, a checkpoint of the other propagator) is reported before any video is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rvos_core import registry
from rvos_core.cli import add_dataset_args, dataset_from_args, path_arg, run_main
from rvos_core.command import Parser
from rvos_core.data import Dataset, Video
from rvos_core.errors import ConfigError, InputError
from rvos_core.masks import decode_mask_png
from rvos_core.paths import load_paths
from rvos_core.runfolder import (
    Run,
    RunRecord,
    VideoWriter,
    check_key_frames,
    file_record,
    key_frame_index,
)
from rvos_core.runner import Stage, Target, run_stage
from rvos_core.shard import parse_shard
from rvos_nn.precision import check_precision, inference_context, resolve_device
from rvos_vos.network import NetConfig, PropagationNet
from rvos_vos.procedure import MultiViewTracker, Track, lockstep
from rvos_vos.propagators import Propagator, load_propagator
from rvos_vos.session import MemoryPolicy
from rvos_vos.views import ViewConfig, make_views, read_frame

PRODUCER = "rvos_vos.propagate"
# --precision amp is upstream's --amp: fp16 autocast on the GPU.
PRECISION_ALIASES = {"amp": "fp16"}
# Expressions propagated together (--expression-group): their memories are held at once.
DEFAULT_GROUP = 4


@dataclass(frozen=True)
class PropagateSettings:
    """One propagation run's settings (what the CLI options resolve to).

    Attributes:
        checkpoint: the propagator's weights file.
        expression_group: expressions propagated together (results do not depend on it).
        shard: (i, n) of ``--shard i/n``.
    """

    propagator: Propagator
    config: NetConfig
    views: ViewConfig
    policy: MemoryPolicy
    checkpoint: Path
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"
    expression_group: int = DEFAULT_GROUP
    shard: tuple[int, int] = (0, 1)

    def tracker(self, net: PropagationNet, size: tuple[int, int]) -> MultiViewTracker:
        """The views' sessions for one expression; the key mask (PNG > 0) is one object."""
        return MultiViewTracker(
            net=net,
            policy=self.policy,
            live_ids=self.propagator.live_ids(self.config, objects=1),
            views=self.views,
            size=size,
        )

    def record(self) -> dict[str, Any]:
        """The configuration run.json records (and a resumed run must repeat)."""
        return {
            "propagator": self.propagator.name,
            "network": self.config.to_dict(),
            "views": asdict(self.views),
            "memory": asdict(self.policy),
            "precision": self.precision,
        }


@dataclass(frozen=True)
class Job:
    """One expression of one video: its key frame and the input run's key mask (file and bytes)."""

    exp_id: str
    key: int
    key_path: Path
    key_png: bytes


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m rvos_vos.propagate", description=__doc__)
    parser.add_argument(
        "propagator",
        help=f"a registered propagator ({', '.join(registry.names(registry.PROPAGATORS))})",
    )
    parser.add_argument(
        "--checkpoint",
        type=path_arg,
        help="weights file (default: CHECKPOINTS/<the propagator's file>, e.g. aot_swinl.pth)",
    )
    parser.add_argument("--run", type=path_arg, required=True, help="the input run folder")
    parser.add_argument("--out", type=path_arg, required=True, help="the run folder to write")
    add_dataset_args(parser)
    net = parser.add_argument_group("network")
    net.add_argument("--variant", default="full", help="named variant (default: full)")
    net.add_argument(
        "--config",
        type=path_arg,
        help="JSON of upstream MODEL_* names + 'swin' (overrides --variant)",
    )
    views = parser.add_argument_group("views (default: the competition's 3 scales x flip)")
    views.add_argument("--scales", type=float, nargs="+", default=list(ViewConfig.scales))
    views.add_argument("--no-flip", action="store_true", help="no mirrored views")
    views.add_argument(
        "--max-size", type=float, default=ViewConfig.max_size, help="long-side cap (1040)"
    )
    memory = parser.add_argument_group("memory")
    memory.add_argument(
        "--long-term-gap",
        type=int,
        help="frames between long-term entries (default: the model's, 5)",
    )
    memory.add_argument(
        "--max-long-term",
        type=int,
        help="cap the long-term memory at N frames (drop the oldest non-key frame); default: unbounded, as upstream",
    )
    compute = parser.add_argument_group("compute")
    compute.add_argument(
        "--expression-group",
        type=int,
        default=DEFAULT_GROUP,
        metavar="N",
        help=f"propagate up to N expressions of a video together, each frame encoded once per "
        f"pass for all of them (memory grows with N; results do not depend on it; default "
        f"{DEFAULT_GROUP})",
    )
    compute.add_argument("--device", default="cpu", help="cpu or cuda")
    compute.add_argument(
        "--precision",
        default="fp32",
        help="fp32 (default), bf16 or fp16 (cuda) autocast; amp = fp16 (upstream --amp)",
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> PropagateSettings:
    """The settings of the command line (the checkpoint defaults to CHECKPOINTS/<its file>)."""
    if args.expression_group < 1:
        raise ConfigError("--expression-group must be >= 1")
    propagator = load_propagator(args.propagator)
    config = propagator.config(args.variant, args.config)
    device = resolve_device(args.device)
    checkpoint = load_paths().checkpoint(
        args.checkpoint, propagator.checkpoint_name, f"propagator {propagator.name}"
    )
    return PropagateSettings(
        propagator=propagator,
        config=config,
        views=ViewConfig(scales=tuple(args.scales), flip=not args.no_flip, max_size=args.max_size),
        policy=propagator.policy(config, args.long_term_gap, args.max_long_term),
        checkpoint=checkpoint,
        device=device,
        precision=check_precision(PRECISION_ALIASES.get(args.precision, args.precision), device),
        expression_group=args.expression_group,
        shard=parse_shard(args.shard),
    )


def load_network(settings: PropagateSettings) -> PropagationNet:
    net = settings.propagator.build(settings.config)
    settings.propagator.load(net, settings.checkpoint)
    return net.to(settings.device).eval()


# ---------------------------------------------------------------------------------------------
# Checking the inputs (before anything is written)


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


# ---------------------------------------------------------------------------------------------
# Propagating one video


class FrameSource:
    """The views of a video's frames, read and resized on demand, on the compute device."""

    def __init__(self, video: Video, views: ViewConfig, device: torch.device) -> None:
        self.paths = video.frame_paths()
        self.views, self.device = views, device

    def __call__(self, t: int) -> list[torch.Tensor]:
        image = read_frame(self.paths[t])
        return [v.to(self.device) for v in make_views(image, self.views)]


def propagate_video(
    net: PropagationNet, settings: PropagateSettings, run: Run, jobs: list[Job], out: VideoWriter
) -> None:
    """Write every expression of ``out.video`` (see the module docstring), propagating up to
    ``settings.expression_group`` expressions together (``procedure.lockstep``)."""
    video, group = out.video, settings.expression_group
    frames = FrameSource(video, settings.views, settings.device)
    size = video.checked_frame_size()
    tracked = []
    for job in jobs:
        key_mask = decode_mask_png(job.key_png, job.key_path, size)
        out.write_png(job.exp_id, job.key, job.key_png, size)
        if key_mask.any():
            tracked.append((job, key_mask))
        else:
            copy_masks(run, video, job, out, size)
    for start in range(0, len(tracked), group):
        batch = tracked[start : start + group]
        tracks = [
            Track(settings.tracker(net, size), job.key, _label(key_mask, settings.device))
            for job, key_mask in batch
        ]
        for i, t, predicted in lockstep(tracks, frames, len(video.frames)):
            out.write_mask(batch[i][0].exp_id, t, (predicted > 0).cpu().numpy())
    if run.has_scores:
        scores = run.scores(video)
        for job in jobs:
            out.write_scores(job.exp_id, scores[job.exp_id])


def _label(mask: np.ndarray, device: torch.device) -> torch.Tensor:
    """A key mask bool [H, W] as the ids int64 [H, W] of one object."""
    return torch.from_numpy(mask.astype(np.int64)).to(device)


def copy_masks(run: Run, video: Video, job: Job, out: VideoWriter, size: tuple[int, int]) -> None:
    """Upstream's fallback for an empty key mask: the input run's masks, byte for byte."""
    for t, frame in enumerate(video.frames):
        if t == job.key:
            continue
        path = run.mask_path(video.id, job.exp_id, frame)
        data = read_png(path, size, f"the frames of video {video.id}")
        out.write_png(job.exp_id, t, data, size)


# ---------------------------------------------------------------------------------------------
# The command


def run_record(settings: PropagateSettings, run: Run) -> RunRecord:
    """The provenance of a propagation (run.json); every shard of one run must agree on it."""
    return RunRecord(
        producer=f"{PRODUCER} {settings.propagator.name}",
        value_domain="binary",
        has_scores=run.has_scores,
        has_probs=False,
        inputs=(run.input_record(),),
        checkpoint=file_record(settings.checkpoint),
        config={**settings.record(), "key_frames": "input run's key_frame.json"},
    )


@dataclass
class PropagationStage(Stage):
    """A propagation of ``run`` as a stage of rvos_core.runner."""

    settings: PropagateSettings
    run: Run
    jobs: dict[str, list[Job]] = field(default_factory=dict)
    net: PropagationNet | None = None

    @property
    def name(self) -> str:
        return f"{self.settings.propagator.name} {self.run.name}"

    @property
    def inputs(self) -> Sequence[Path]:
        return (self.run.root,)

    @cached_property
    def record(self) -> RunRecord:
        return run_record(self.settings, self.run)

    def check(self, dataset: Dataset, videos: Sequence[Video]) -> None:
        self.jobs = check_inputs(self.run, dataset, videos)

    def prepare(self, videos: Sequence[Video]) -> None:
        self.net = load_network(self.settings)

    def write_video(self, out: VideoWriter) -> None:
        assert self.net is not None, "prepare() loads the network"
        with inference_context(self.settings.device, self.settings.precision):
            propagate_video(self.net, self.settings, self.run, self.jobs[out.video.id], out)

    def key_frames(self) -> Mapping[str, Any]:
        return self.run.key_frames()


def propagate(run: Path, dataset: Dataset, out: Path, settings: PropagateSettings) -> bool:
    """Propagate run ``run`` into run ``out``; True when the output run is complete.

    A complete output made with other settings, an output that is the input run (or inside it),
    and an input run made from another version of the split's meta file are refused.
    """
    stage = PropagationStage(settings, Run(run))
    return run_stage(stage, Target(out, dataset, settings.shard))


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):
        # A library tracker (SAM 2.1, SAM 3 tracker, EdgeTAM) has its own options; its command
        # uses this module's input checks, hence the import here.
        from rvos_vos.propagate_trackers import main_body, tracker_family

        family = tracker_family(argv[0])
        if family is not None:
            return main_body(family, argv)
    args = _parser().parse_args(argv)
    settings = settings_from_args(args)
    propagate(args.run, dataset_from_args(args), args.out, settings)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

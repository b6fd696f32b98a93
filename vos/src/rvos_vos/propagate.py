"""``python -m rvos_vos.propagate aot|deaot``: propagate a run's key-frame masks with AOT or DeAOT.

Reads a complete run folder (its ``key_frame.json``, key-frame masks, scores) and the dataset's
frames; writes a new run folder: every frame of every expression, the key frame's mask copied
byte for byte from the input run, every other frame predicted by the competition's bidirectional
6-view procedure (``rvos_vos.procedure``). An empty key mask makes the expression a copy of the
input run's masks (upstream's fallback). The input run's scores are carried, so the output's
key_frame.json is the input's. Sharded by video, resumable, one progress bar with ETA.

Bad input (a run or frame missing, a key frame out of range, frames of another size than the
masks, a checkpoint of the other propagator) is reported before any video is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from rvos_core.cli import add_dataset_args, dataset_from_args, path_arg, run_main
from rvos_core.data import Dataset, Video
from rvos_core.errors import ConfigError, InputError
from rvos_core.masks import decode_mask_png
from rvos_core.paths import load_paths
from rvos_core.progress import progress_bar
from rvos_core.runfolder import (
    Run,
    RunWriter,
    VideoWriter,
    check_finished,
    check_key_frames,
    check_output,
    key_frame_index,
)
from rvos_core.shard import parse_shard, select_shard
from rvos_nn.infer import file_record
from rvos_nn.precision import check_precision, inference_context, resolve_device
from rvos_vos.network import NetConfig, PropagationNet
from rvos_vos.procedure import MultiViewTracker, Track, lockstep
from rvos_vos.propagators import PROPAGATORS, Propagator
from rvos_vos.session import MemoryPolicy
from rvos_vos.views import ViewConfig, make_views, read_frame

PRODUCER = "rvos_vos.propagate"
# --precision amp is upstream's --amp: fp16 autocast on the GPU.
PRECISION_ALIASES = {"amp": "fp16"}
# Expressions propagated together (--expression-group): their memories are held at once.
DEFAULT_GROUP = 4


@dataclass(frozen=True)
class Settings:
    """Everything a propagation run depends on besides its inputs."""

    propagator: Propagator
    config: NetConfig
    views: ViewConfig
    policy: MemoryPolicy
    device: torch.device
    precision: str

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
        """What run.json records (and what a resumed run must repeat)."""
        return {
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
    parser = argparse.ArgumentParser(prog="python -m rvos_vos.propagate", description=__doc__)
    parser.add_argument("propagator", choices=sorted(PROPAGATORS))
    parser.add_argument(
        "--checkpoint",
        type=path_arg,
        help="weights file (default: CHECKPOINTS/<the propagator's file>, e.g. aot_swinl.pth)",
    )
    parser.add_argument("--run", type=path_arg, required=True, help="the input run folder")
    parser.add_argument("--out", type=path_arg, required=True, help="the run folder to write")
    add_dataset_args(parser)
    net = parser.add_argument_group("network")
    net.add_argument("--variant", default="swinl", help="named variant (default: swinl)")
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
        help="fp32 (default); amp = fp16 (upstream --amp), fp16, bf16: autocast",
    )
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    propagator = PROPAGATORS[args.propagator]
    config = propagator.config(args.variant, args.config)
    device = resolve_device(args.device)
    precision = check_precision(PRECISION_ALIASES.get(args.precision, args.precision), device)
    if precision != "fp32" and device.type != "cuda":
        raise ConfigError(f"--precision {args.precision} is autocast on the GPU: use --device cuda")
    return Settings(
        propagator=propagator,
        config=config,
        views=ViewConfig(scales=tuple(args.scales), flip=not args.no_flip, max_size=args.max_size),
        policy=propagator.policy(config, args.long_term_gap, args.max_long_term),
        device=device,
        precision=precision,
    )


def load_network(settings: Settings, checkpoint: Path) -> PropagationNet:
    net = settings.propagator.build(settings.config)
    settings.propagator.load(net, checkpoint)
    return net.to(settings.device).eval()


# ---------------------------------------------------------------------------------------------
# Checking the inputs (before anything is written)


def read_jobs(run: Run, video: Video, key_frames: dict[str, Any]) -> list[Job]:
    """The video's expressions with their key frames and key masks; checks sizes and scores."""
    size = frame_size(video)
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


def frame_size(video: Video) -> tuple[int, int]:
    """(H, W) shared by every listed frame of ``video`` (headers only); else an InputError."""
    paths = video.frame_paths()
    size = _header_size(paths[0])
    for path in paths[1:]:
        other = _header_size(path)
        if other != size:
            raise InputError(
                path, f"frame is {other[0]}x{other[1]}, the video's first is {size[0]}x{size[1]}"
            )
    return size


def _header_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(path, f"unreadable image: {exc}") from None
    return height, width


def check_inputs(run: Run, dataset: Dataset, videos: list[str]) -> dict[str, list[Job]]:
    run.check_dataset(dataset)
    key_frames = check_key_frames(run.key_frames(), dataset, run.root / "key_frame.json")
    return {v: read_jobs(run, dataset.video(v), key_frames) for v in videos}


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
    net: PropagationNet,
    settings: Settings,
    run: Run,
    video: Video,
    jobs: list[Job],
    out: VideoWriter,
    bar: Any,
    group: int,
) -> None:
    """Write every expression of ``video`` (see the module docstring), propagating up to
    ``group`` expressions together (``procedure.lockstep``)."""
    frames = FrameSource(video, settings.views, settings.device)
    size = frame_size(video)
    tracked = []
    for job in jobs:
        key_mask = decode_mask_png(job.key_png, job.key_path, size)
        out.write_png(job.exp_id, job.key, job.key_png, size)
        if key_mask.any():
            tracked.append((job, key_mask))
        else:
            copy_masks(run, video, job, out, size)
            bar.update(len(video.frames) - 1)
    for start in range(0, len(tracked), group):
        batch = tracked[start : start + group]
        tracks = [
            Track(settings.tracker(net, size), job.key, _label(key_mask, settings.device))
            for job, key_mask in batch
        ]
        for i, t, predicted in lockstep(tracks, frames, len(video.frames)):
            out.write_mask(batch[i][0].exp_id, t, (predicted > 0).cpu().numpy())
            bar.update(1)
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


def run_meta(settings: Settings, run: Run, checkpoint: Path) -> dict[str, Any]:
    return {
        "producer": f"{PRODUCER} {settings.propagator.name}",
        "propagator": settings.propagator.name,
        "input_run": {
            "path": str(run.root.resolve()),
            "producer": run.meta.get("producer"),
            "key_frames": "input run's key_frame.json",
        },
        "checkpoint": file_record(checkpoint),
        "config": settings.record(),
        "value_domain": "binary",
        "has_scores": run.has_scores,
        "has_probs": False,
    }


def write_videos(
    net: PropagationNet,
    settings: Settings,
    run: Run,
    writer: RunWriter,
    jobs: dict[str, list[Job]],
    todo: list[str],
    group: int,
) -> None:
    """Propagate the videos of ``todo`` that no other process writes meanwhile into ``writer``."""
    dataset = writer.dataset
    total = sum(len(jobs[v]) * (len(dataset.video(v).frames) - 1) for v in todo)
    with progress_bar(total, f"{settings.propagator.name} {writer.root.name}", unit="frame") as bar:
        for out in writer.claims(todo):
            with out, inference_context(settings.device, settings.precision):
                propagate_video(net, settings, run, out.video, jobs[out.video.id], out, bar, group)


def propagate(args: argparse.Namespace) -> bool:
    """The whole command; True when the output run is complete.

    A complete output made with other settings, an output that is the input run (or inside it),
    and an input run made from another version of the split's meta file are refused.
    """
    if args.expression_group < 1:
        raise ConfigError("--expression-group must be >= 1")
    settings = settings_from_args(args)
    dataset = dataset_from_args(args)
    check_output(args.out, [args.run])
    run = Run(args.run)
    checkpoint = load_paths().checkpoint(
        args.checkpoint,
        settings.propagator.checkpoint_name,
        f"propagator {settings.propagator.name}",
    )
    meta = run_meta(settings, run, checkpoint)
    if check_finished(args.out, dataset, meta):
        print(f"{args.out} is complete (run.json); nothing to do", file=sys.stderr)
        return True
    videos = select_shard(list(dataset.videos), parse_shard(args.shard))
    jobs = check_inputs(run, dataset, videos)
    net = load_network(settings, checkpoint)
    writer = RunWriter(args.out, dataset, meta)
    todo = writer.todo(videos)
    write_videos(net, settings, run, writer, jobs, todo, args.expression_group)
    complete = writer.finalize(key_frames=run.key_frames())
    state = "run complete" if complete else "shard done; other shards still have videos to do"
    print(f"{args.out}: {len(todo)} videos written; {state}", file=sys.stderr)
    return complete


def _main(argv: Sequence[str] | None) -> int:
    propagate(_parser().parse_args(argv))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

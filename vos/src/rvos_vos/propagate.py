"""``python -m rvos_vos.propagate aot|deaot``: propagate a run's key-frame masks with AOT or DeAOT.

Reads a complete run folder (its ``key_frame.json``, key-frame masks, scores) and the dataset's
frames; writes a new run folder: every frame of every expression, the key frame's mask copied
byte for byte from the input run, every other frame predicted by the competition's bidirectional
6-view procedure (``rvos_vos.procedure``). An empty key mask makes the expression a copy of the
input run's masks (upstream's fallback). The input run's scores are carried, so the output's
key_frame.json is the input's. A stage of rvos_core.runner: sharded by video, resumable, one
progress bar with ETA; the network is loaded only when videos are left.

Several runs at once (``--run IN1 --out OUT1 --run IN2 --out OUT2 ...``: the i-th ``--out`` is the
output of the i-th ``--run``): one network, each video's frames read and their views encoded once
per pass for the expressions of every run (``procedure.lockstep`` over the tracks of all runs);
every output run folder is the one the run alone gives, byte for byte, and is resumed and committed
video by video on its own (a video done in one output and not another is written only where it is
missing).

Bad input (a run or frame missing, a key frame out of range, frames of another size than the
masks, a checkpoint of the other propagator) is reported before any video is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rvos_core import registry
from rvos_core.cli import add_dataset_args, dataset_from_args, path_arg, run_main
from rvos_core.command import Parser
from rvos_core.data import Dataset, Video
from rvos_core.errors import ConfigError
from rvos_core.masks import decode_mask_png
from rvos_core.parallel import for_each_video
from rvos_core.paths import load_paths
from rvos_core.runfolder import Run, RunRecord, RunWriter, VideoWriter, check_output, file_record
from rvos_core.runner import Stage, Target, finish_stage, pending_videos, run_stage
from rvos_core.shard import parse_shard
from rvos_nn import zoo
from rvos_nn.precision import check_precision, inference_context, resolve_device
from rvos_vos.key_inputs import PRECISION_ALIASES, PRODUCER, Job, check_inputs, copy_masks
from rvos_vos.network import NetConfig, PropagationNet
from rvos_vos.procedure import MultiViewTracker, Track, lockstep
from rvos_vos.propagators import Propagator, load_propagator
from rvos_vos.session import MemoryPolicy
from rvos_vos.views import ViewConfig, make_views, read_frame

# Expressions of each run propagated together (--expression-group): their memories are held at once.
DEFAULT_GROUP = 4


@dataclass(frozen=True)
class PropagateSettings:
    """One propagation run's settings (what the CLI options resolve to).

    Attributes:
        checkpoint: the propagator's weights file.
        expression_group: expressions of each run propagated together (results do not depend
            on it); a group holds up to ``expression_group`` x runs tracks.
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
    parser.add_argument(
        "--run",
        type=path_arg,
        action="append",
        required=True,
        help="the input run folder (repeat --run/--out to propagate several runs together)",
    )
    parser.add_argument(
        "--out",
        type=path_arg,
        action="append",
        required=True,
        help="the run folder to write (the i-th --out is the output of the i-th --run)",
    )
    add_dataset_args(parser)
    net = parser.add_argument_group("network")
    net.add_argument("--variant", help="named variant (default: full)")
    net.add_argument(
        "--zoo",
        type=path_arg,
        help="a tiny zoo folder (make zoo): its variant and weights of the propagator",
    )
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
        help=f"propagate up to N expressions of a video of each run together, each frame encoded "
        f"once per pass for all of them (memory grows with N x runs; results do not depend on "
        f"it; default {DEFAULT_GROUP})",
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
    variant, checkpoint, _ = zoo.resolve(
        args.zoo, propagator.name, "propagator", variant=args.variant, checkpoint=args.checkpoint
    )
    config = propagator.config(variant or "full", args.config)
    device = resolve_device(args.device)
    checkpoint = load_paths().checkpoint(
        checkpoint, propagator.checkpoint_name, f"propagator {propagator.name}"
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
# Propagating one video


class FrameSource:
    """The views of a video's frames, read and resized on demand, on the compute device."""

    def __init__(self, video: Video, views: ViewConfig, device: torch.device) -> None:
        self.paths = video.frame_paths()
        self.views, self.device = views, device

    def __call__(self, t: int) -> list[torch.Tensor]:
        image = read_frame(self.paths[t])
        return [v.to(self.device) for v in make_views(image, self.views)]


@dataclass(frozen=True)
class Tracked:
    """An expression to propagate: where it is written, its job and its key mask bool [H, W]."""

    out: VideoWriter
    job: Job
    key_mask: np.ndarray


@dataclass(frozen=True)
class RunVideo:
    """One video of one run to write: the input run, the video's jobs and the output's writer."""

    run: Run
    jobs: list[Job]
    out: VideoWriter


def propagate_video(
    net: PropagationNet, settings: PropagateSettings, run: Run, jobs: list[Job], out: VideoWriter
) -> None:
    """Write every expression of ``out.video`` (see the module docstring)."""
    propagate_videos(net, settings, [RunVideo(run, jobs, out)])


def propagate_videos(
    net: PropagationNet, settings: PropagateSettings, parts: Sequence[RunVideo]
) -> None:
    """Write one video into every run of ``parts``, its frames encoded once per pass for all of
    them: the expressions are tracked in groups of up to ``settings.expression_group`` of each
    run, a group's in one ``procedure.lockstep``."""
    video = parts[0].out.video
    frames = FrameSource(video, settings.views, settings.device)
    size = video.checked_frame_size()
    tracked = [start_expressions(part, size) for part in parts]
    for batch in groups(tracked, settings.expression_group):
        tracks = [
            Track(settings.tracker(net, size), item.job.key, _label(item.key_mask, settings.device))
            for item in batch
        ]
        for i, t, predicted in lockstep(tracks, frames, len(video.frames)):
            batch[i].out.write_mask(batch[i].job.exp_id, t, (predicted > 0).cpu().numpy())
    for part in parts:
        carry_scores(part)


def start_expressions(part: RunVideo, size: tuple[int, int]) -> list[Tracked]:
    """Write each key mask (and an empty key mask's copied masks); the expressions left to track."""
    video, tracked = part.out.video, []
    for job in part.jobs:
        key_mask = decode_mask_png(job.key_png, job.key_path, size)
        part.out.write_png(job.exp_id, job.key, job.key_png, size)
        if key_mask.any():
            tracked.append(Tracked(part.out, job, key_mask))
        else:
            copy_masks(part.run, video, job, part.out, size)
    return tracked


def groups(tracked: Sequence[Sequence[Tracked]], size: int) -> Iterable[list[Tracked]]:
    """Group k: the k-th ``size`` expressions of every run (per run in order), while any are left."""
    longest = max((len(items) for items in tracked), default=0)
    for start in range(0, longest, size):
        yield [item for items in tracked for item in items[start : start + size]]


def carry_scores(part: RunVideo) -> None:
    """The input run's scores of the video, when it has scores."""
    if part.run.has_scores:
        scores = part.run.scores(part.out.video)
        for job in part.jobs:
            part.out.write_scores(job.exp_id, scores[job.exp_id])


def _label(mask: np.ndarray, device: torch.device) -> torch.Tensor:
    """A key mask bool [H, W] as the ids int64 [H, W] of one object."""
    return torch.from_numpy(mask.astype(np.int64)).to(device)


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

    def on_gpu(self) -> bool:
        return self.settings.device.type == "cuda"

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


@dataclass(frozen=True)
class Output:
    """One run of a joint propagation: its stage, the writer of its output run folder and the
    videos it has still to write."""

    stage: PropagationStage
    writer: RunWriter
    todo: list[str]


def propagate_runs(
    pairs: Sequence[tuple[Path, Path]], dataset: Dataset, settings: PropagateSettings
) -> bool:
    """Propagate each (input run, output run) of ``pairs`` as ``propagate`` does, all together:
    one network, each video's frames encoded once per pass for every run that has not written
    it; True when every output run is complete.

    Refused before anything is written: an output given twice or inside any of the inputs, and
    what ``propagate`` refuses of each run.
    """
    stages = [PropagationStage(settings, Run(run)) for run, _ in pairs]
    targets = [Target(out, dataset, settings.shard) for _, out in pairs]
    check_outputs(targets, stages)
    pending = [pending_videos(stage, target) for stage, target in zip(stages, targets, strict=True)]
    net = load_network(settings) if any(pending) else None
    outputs = []
    for stage, target, videos in zip(stages, targets, pending, strict=True):
        if videos is not None:
            writer = RunWriter(target.out, dataset, stage.record)
            outputs.append(Output(stage, writer, writer.todo(videos)))
    # Videos are claimed in the order of the output folders: two commands sharing outputs (make
    # -j) then never each wait for a video lock the other holds.
    outputs.sort(key=lambda output: output.writer.root.resolve())
    written = {output.writer.root: 0 for output in outputs}
    todo = sorted({video for output in outputs for video in output.todo})
    write = partial(write_together, net, settings, outputs, written)
    for_each_video(write, todo, 1, desc=f"{settings.propagator.name} x{len(outputs)} runs")
    complete = [finish_stage(o.stage, o.writer, written[o.writer.root]) for o in outputs]
    return all(complete)


def check_outputs(targets: Sequence[Target], stages: Sequence[PropagationStage]) -> None:
    """Refuse an output folder given twice or that is (or is inside) any input run."""
    seen: set[Path] = set()
    for target in targets:
        folder = target.out.resolve()
        if folder in seen:
            raise ConfigError(f"{target.out}: given twice as --out; each run needs its own output")
        seen.add(folder)
        check_output(target.out, [stage.run.root for stage in stages])


def write_together(
    net: PropagationNet | None,
    settings: PropagateSettings,
    outputs: Sequence[Output],
    written: dict[Path, int],
    video_id: str,
) -> None:
    """Claim ``video_id`` in every output that has not written it and write it there at once
    (``propagate_videos``); each output commits it on its own, none when any fails."""
    assert net is not None, "propagate_runs loads the network when videos are left"
    with ExitStack() as claimed:
        parts = []
        for output in outputs:
            out = output.writer.claim_video(output.writer.dataset.video(video_id))
            if out is not None:
                claimed.enter_context(out)
                parts.append(RunVideo(output.stage.run, output.stage.jobs[video_id], out))
                written[output.writer.root] += 1
        if parts:
            with inference_context(settings.device, settings.precision):
                propagate_videos(net, settings, parts)


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-"):
        # A library tracker (SAM 2.1, SAM 3 tracker, EdgeTAM) has its own options and command
        # (imported only then: it loads transformers).
        from rvos_vos.propagate_trackers import main_body, tracker_family

        family = tracker_family(argv[0])
        if family is not None:
            return main_body(family, argv)
    args = _parser().parse_args(argv)
    if len(args.run) != len(args.out):
        raise ConfigError(
            f"{len(args.run)} --run but {len(args.out)} --out: give one --out after each --run"
        )
    settings = settings_from_args(args)
    dataset = dataset_from_args(args)
    if len(args.run) == 1:
        propagate(args.run[0], dataset, args.out[0], settings)
    else:
        propagate_runs(list(zip(args.run, args.out, strict=True)), dataset, settings)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

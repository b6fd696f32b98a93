"""``python -m rvos_nn.infer MODEL``: a model run, dataset + checkpoint -> run folder.

::

    python -m rvos_nn.infer MODEL --out RUN_DIR [--checkpoint PATH] [--pretrained DIR]
        [--data DATA] [--dataset refytvos|mevis|refdavis] [--split SPLIT] [--shard i/n]
        [--device cpu|cuda] [--precision fp32|bf16|fp16] [--variant full] [--save-probs]
        [--option key=value ...] [--zoo DIR]

MODEL is a name registered under the entry-point group ``rvos.models`` (rvos_nn.predictor).
The checkpoint defaults to CHECKPOINTS/<the model's file>, the tokenizers' folder to PRETRAINED
(``--zoo DIR``: the tiny zoo's variant, weights and tokenizers, rvos_nn.zoo),
the dataset to DATA and SPLIT (paths.env; a variable is read only when its option is not given).
A stage of rvos_core.runner: when videos are left, the model is built, strictly loaded and given
its tokenizer before anything is written; then every video of the shard that is not done yet is
read (all its frames, once), predicted under the chosen precision and committed atomically
(rvos_core.runfolder). A killed or failed run keeps its finished videos and resumes with the same
command; run.json appears when every video of the split is done (by any shard).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rvos_core.cli import add_dataset_args, dataset_from_args, path_arg, run_main
from rvos_core.command import Parser
from rvos_core.data import Dataset, Video, open_image
from rvos_core.errors import ConfigError, InputError
from rvos_core.masks import quantize_probs
from rvos_core.paths import Paths, load_paths
from rvos_core.runfolder import RunRecord, VideoWriter, file_record
from rvos_core.runner import Stage, Target, run_stage
from rvos_core.shard import parse_shard
from rvos_nn import zoo
from rvos_nn.checkpoint import load_checkpoint
from rvos_nn.precision import check_precision, inference_context, resolve_device
from rvos_nn.predictor import (
    ExpressionPrediction,
    ModelEntry,
    Predictor,
    PredictorContext,
    load_model_entry,
)

PRODUCER = "rvos_nn.infer"


@dataclass(frozen=True)
class InferSettings:
    """One model run's settings (what the CLI options resolve to).

    Attributes:
        checkpoint: the weights file; None builds the model with random weights (benchmarks).
        pretrained: the PRETRAINED folder (tokenizers).
        shard: (i, n) of ``--shard i/n``.
    """

    variant: str
    checkpoint: Path | None
    pretrained: Path
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"
    options: Mapping[str, str] = field(default_factory=dict)
    save_probs: bool = False
    shard: tuple[int, int] = (0, 1)


def create_predictor(entry: ModelEntry, settings: InferSettings) -> Predictor:
    """Build the model, load its checkpoint strictly, move it to the device, wrap it."""
    variant = entry.check_variant(settings.variant)
    options = entry.check_options(settings.options)
    check_precision(settings.precision, settings.device)
    if settings.checkpoint is not None and entry.folder_weights is not None:
        model = entry.folder_weights.load(settings.checkpoint)
    else:
        model = entry.build(variant)
        if settings.checkpoint is not None:
            load_checkpoint(model, settings.checkpoint, entry.checkpoint_rules)
    model.to(settings.device).eval()
    context = PredictorContext(
        variant=variant,
        device=settings.device,
        precision=settings.precision,  # type: ignore[arg-type]  (checked above)
        pretrained=settings.pretrained,
        options=options,
    )
    return entry.create_predictor(model, context)


def run_record(entry: ModelEntry, settings: InferSettings) -> RunRecord:
    """The provenance of a model run (run.json); every shard of one run must agree on it."""
    checkpoint = None
    if settings.checkpoint is not None and entry.folder_weights is not None:
        checkpoint = entry.folder_weights.record(settings.checkpoint)
    elif settings.checkpoint is not None:
        checkpoint = file_record(settings.checkpoint)
    config = {
        "model": entry.name,
        "variant": entry.check_variant(settings.variant),
        "options": entry.check_options(settings.options),
        "precision": check_precision(settings.precision, settings.device),
    }
    return RunRecord(
        producer=PRODUCER,
        value_domain=entry.value_domain,
        has_scores=True,
        has_probs=settings.save_probs,
        checkpoint=checkpoint,
        config=config,
    )


def read_frames(video: Video) -> list[Image.Image]:
    """Every listed frame of ``video``, decoded once (PIL RGB); all must share one size."""
    video.checked_frame_size()
    return [open_image(path) for path in video.frame_paths()]


def _checked(
    prediction: ExpressionPrediction, video: Video, exp_id: str, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """(probs float32 [T, H, W], scores float64 [T]) after checking a predictor's output."""
    probs = np.asarray(prediction.probs, dtype=np.float32)
    scores = np.asarray(prediction.scores, dtype=np.float64)
    want = (len(video.frames), *size)
    where = f"video {video.id}, expression {exp_id}"
    if probs.shape != want or scores.shape != want[:1]:
        raise ValueError(
            f"{where}: predictor returned probs {probs.shape} and scores {scores.shape}, "
            f"need {want} and ({want[0]},)"
        )
    if not np.isfinite(scores).all():
        raise ValueError(f"{where}: predictor returned non-finite scores")
    return probs, scores


def predict_video(
    predictor: Predictor, video: Video, frames: Sequence[Image.Image]
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(exp_id, probs [T, H, W], scores [T]) for every expression of ``video``, in meta order."""
    texts = [e.text for e in video.expressions]
    size = (frames[0].height, frames[0].width)
    predictions = iter(predictor.predict(frames, texts))
    for exp_id in video.exp_ids:
        prediction = next(predictions, None)
        if prediction is None:
            raise ValueError(
                f"video {video.id}: predictor returned fewer than {len(texts)} results"
            )
        yield (exp_id, *_checked(prediction, video, exp_id, size))
    if next(predictions, None) is not None:
        raise ValueError(f"video {video.id}: predictor returned more than {len(texts)} results")


def write_prediction(
    out: VideoWriter, exp_id: str, probs: np.ndarray, scores: np.ndarray, save_probs: bool
) -> None:
    """Masks (probs > 0.5), scores and optionally the quantised probabilities of one expression."""
    out.write_masks(exp_id, probs > 0.5)
    out.write_scores(exp_id, scores.tolist())
    if save_probs:
        out.write_probs(exp_id, quantize_probs(probs))


@dataclass
class ModelStage(Stage):
    """A model run as a stage of rvos_core.runner; the predictor is made when videos are left
    (``prepare``) or given (benchmarks)."""

    entry: ModelEntry
    settings: InferSettings
    predictor: Predictor | None = None

    @property
    def name(self) -> str:
        return self.entry.name

    @cached_property
    def record(self) -> RunRecord:
        return run_record(self.entry, self.settings)

    def check(self, dataset: Dataset, videos: Sequence[Video]) -> None:
        for video in videos:
            video.frame_paths()  # a missing frame fails before any work

    def prepare(self, videos: Sequence[Video]) -> None:
        self.predictor = create_predictor(self.entry, self.settings)

    def on_gpu(self) -> bool:
        return self.settings.device.type == "cuda"

    def write_video(self, out: VideoWriter) -> None:
        """Read, predict and write one video.

        An InputError of the model that names no file (e.g. an expression too long for the text
        encoder) is reported against the dataset's meta file and the video.
        """
        video, settings = out.video, self.settings
        assert self.predictor is not None, "prepare() makes the predictor"
        try:
            with inference_context(settings.device, settings.precision):
                frames = read_frames(video)
                if video.expressions:
                    for exp_id, probs, scores in predict_video(self.predictor, video, frames):
                        write_prediction(out, exp_id, probs, scores, settings.save_probs)
        except InputError as exc:
            if exc.path is not None:
                raise
            meta_path = out.run.dataset.meta_path
            raise InputError(meta_path, f"video {video.id}: {exc.problem}") from None


def infer(entry: ModelEntry, dataset: Dataset, out: Path, settings: InferSettings) -> bool:
    """Run ``entry`` over the shard's videos that are not done; True when the run is complete.

    A complete run made with other settings (another checkpoint, variant, option...) is refused.
    """
    return run_stage(ModelStage(entry, settings), Target(out, dataset, settings.shard))


def parse_options(pairs: Sequence[str]) -> dict[str, str]:
    """``key=value`` strings -> dict; a malformed or repeated key is a ConfigError."""
    options: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option expects key=value, got {pair!r}")
        if key in options:
            raise ConfigError(f"--option {key} is given twice")
        options[key] = value
    return options


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m rvos_nn.infer", description=__doc__)
    parser.add_argument("model", help="a registered model (entry-point group rvos.models)")
    parser.add_argument("--out", type=path_arg, required=True, help="the run folder to write")
    parser.add_argument(
        "--checkpoint", type=path_arg, help="weights file (default: CHECKPOINTS/<the model's file>)"
    )
    parser.add_argument(
        "--pretrained", type=path_arg, help="tokenizers' folder (default: PRETRAINED of paths.env)"
    )
    add_dataset_args(parser)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--precision", default="fp32", help="fp32 (default), bf16 or fp16 (cuda)")
    parser.add_argument("--variant", help="model variant (default: the model's default)")
    parser.add_argument(
        "--zoo",
        type=path_arg,
        help="a tiny zoo folder (make zoo): the model's variant, weights and tokenizers from there",
    )
    parser.add_argument("--save-probs", action="store_true", help="also store probabilities")
    parser.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="model option"
    )
    return parser


def _pretrained(args: argparse.Namespace, paths: Paths, fallback: Path | None) -> Path:
    """--pretrained, else the zoo's tokenizers (``fallback``), else PRETRAINED."""
    if args.pretrained is not None:
        if not args.pretrained.is_dir():
            raise InputError(args.pretrained, "--pretrained is not a folder")
        return args.pretrained
    if fallback is not None:
        return fallback
    return paths.require_dir("PRETRAINED", "--pretrained")


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    entry = load_model_entry(args.model)
    paths = load_paths()
    device = resolve_device(args.device)
    variant, checkpoint, found = zoo.resolve(
        args.zoo, entry.name, "model", variant=args.variant, checkpoint=args.checkpoint
    )
    settings = InferSettings(
        variant=entry.check_variant(variant),
        checkpoint=paths.checkpoint(checkpoint, entry.checkpoint_file, f"model {entry.name}"),
        pretrained=_pretrained(args, paths, found and found.pretrained),
        device=device,
        precision=check_precision(args.precision, device),
        options=parse_options(args.option),
        save_probs=args.save_probs,
        shard=parse_shard(args.shard),
    )
    infer(entry, dataset_from_args(args), args.out, settings)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

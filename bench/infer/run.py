"""Driver-level benchmark of a model run: time per video and peak memory.

Writes a synthetic Ref-YouTube-VOS-style split (N videos x E expressions x T frames of H x W) and
runs the real driver path per video (rvos_nn.infer.ModelStage.write_video: decode every frame once, predict,
threshold, encode the PNGs, commit) in three modes, each in a fresh process:

    floor     the driver alone: a constant predictor (frame decoding + PNG writing + commits)
    reuse     the model's predictor called once per video with all its expressions
              (the visual part computed once and reused, as the driver always does)
    separate  the predictor called once per expression (no reuse: the visual part recomputed)

For each: model load time (build + checkpoint), the first video (cold) and the median of the others
(warm), seconds per expression, frames per second, peak memory (process peak RSS on CPU; peak
CUDA allocation on GPU). Reference: separate / reuse shows what reuse saves (about E times the
visual cost); floor / reuse is the driver's own share of a model run (small for real models).
Without --checkpoint the model has random weights (same time and memory as the real one).

    python bench/infer/run.py MODEL [--variant tiny] [--checkpoint PATH] [--videos 3]
        [--frames 6] [--size 96x136] [--expressions 2] [--device cpu] [--precision fp32]
        [--option key=value ...] [--modes floor,reuse,separate] [--threads N]

A model package adds bench/infer/<model>.py that calls ``main([...])`` of this file with its
figures (e.g. the full variant at 720x1280 and the dataset's frame count); see README.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from rvos_core.data import Dataset, open_dataset
from rvos_core.runfolder import RunWriter
from rvos_core.runner import write_video
from rvos_core.synthetic import VideoSpec, write_refytvos
from rvos_nn.infer import InferSettings, ModelStage, create_predictor, parse_options
from rvos_nn.precision import resolve_device
from rvos_nn.predictor import ExpressionPrediction, Predictor, load_model_entry
from rvos_nn.testing import write_tokenizer

MODES = ("floor", "reuse", "separate")


class ConstantPredictor:
    """The floor: a fixed half-plane mask for every expression, no model."""

    def predict(
        self, frames: Sequence[Image.Image], texts: Sequence[str]
    ) -> Iterator[ExpressionPrediction]:
        height, width = frames[0].height, frames[0].width
        probs = np.full((len(frames), height, width), 0.1, np.float32)
        probs[:, :, : width // 2] = 0.9
        for _ in texts:
            yield ExpressionPrediction(probs, np.linspace(0, 1, len(frames)))


class PerExpression:
    """Calls the wrapped predictor once per expression (no reuse of the visual part)."""

    def __init__(self, inner: Predictor) -> None:
        self.inner = inner

    def predict(
        self, frames: Sequence[Image.Image], texts: Sequence[str]
    ) -> Iterator[ExpressionPrediction]:
        for text in texts:
            yield from self.inner.predict(frames, [text])


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def build_inputs(root: Path, args: argparse.Namespace) -> Path:
    """The synthetic split under root/data and tokenizers under root/pretrained; returns DATA."""
    height, width = args.size
    specs = [
        VideoSpec(f"v{i:03d}", args.expressions, args.frames, (height, width))
        for i in range(args.videos)
    ]
    shutil.rmtree(root, ignore_errors=True)
    write_refytvos(root / "data", "valid", specs)
    write_tokenizer(root / "pretrained" / "roberta-base", "roberta")
    write_tokenizer(root / "pretrained" / "bert-base-uncased", "bert")
    return root / "data"


def _settings(args: argparse.Namespace, root: Path) -> InferSettings:
    return InferSettings(
        variant=args.variant,
        checkpoint=args.checkpoint,
        pretrained=args.pretrained or root / "pretrained",
        device=resolve_device(args.device),
        precision=args.precision,
        options=parse_options(args.option),
    )


def _predictor(mode: str, args: argparse.Namespace, settings: InferSettings) -> Predictor:
    if mode == "floor":
        return ConstantPredictor()
    predictor = create_predictor(load_model_entry(args.model), settings)
    return PerExpression(predictor) if mode == "separate" else predictor


def _job(mode: str, args: argparse.Namespace, root: Path, queue: Any) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset: Dataset = open_dataset("refytvos", root / "data", "valid")
    settings = _settings(args, root)
    start = time.perf_counter()
    predictor = _predictor(mode, args, settings)
    load = time.perf_counter() - start
    cuda = settings.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(settings.device)
    out = root / "runs" / mode
    shutil.rmtree(out, ignore_errors=True)
    meta = {"producer": "bench/infer", "value_domain": "logit", "has_scores": True}
    writer = RunWriter(out, dataset, meta)
    seconds = []
    stage = ModelStage(load_model_entry(args.model), settings, predictor)
    for video in dataset:
        start = time.perf_counter()
        write_video(writer, stage, video.id)
        seconds.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(settings.device) / 2**20 if cuda else peak_rss_mib()
    queue.put({"mode": mode, "load_s": load, "video_s": seconds, "peak_mib": peak, "cuda": cuda})


def measure(mode: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Run one mode in a fresh process; its timings and peak memory."""
    context = get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_job, args=(mode, args, root, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--size expects HxW (e.g. 720x1280), got {text!r}"
        ) from None
    return height, width


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="a registered model (entry-point group rvos.models)")
    parser.add_argument("--variant", default="tiny")
    parser.add_argument("--checkpoint", type=Path, help="weights (default: random weights)")
    parser.add_argument("--pretrained", type=Path, help="tokenizer folders (default: synthetic)")
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--size", type=_size, default=(96, 136), help="frame size HxW")
    parser.add_argument("--expressions", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of modes")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rvos-bench-infer"))
    return parser


def _row(result: dict[str, Any], args: argparse.Namespace) -> str:
    times = result["video_s"]
    warm = float(np.median(times[1:])) if len(times) > 1 else times[0]
    per_expression = warm / max(args.expressions, 1)
    return (
        f"{result['mode']:<10}{result['load_s']:>8.2f}{times[0]:>10.3f}{warm:>10.3f}"
        f"{per_expression:>10.3f}{args.frames / warm:>10.1f}{result['peak_mib']:>11.0f}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if unknown := sorted(set(modes) - set(MODES)):
        raise SystemExit(f"unknown mode(s) {unknown}; modes: {', '.join(MODES)}")
    root = args.workdir / args.model
    build_inputs(root, args)
    height, width = args.size
    print(
        f"{args.model} ({args.variant}, {args.checkpoint or 'random weights'}) on {args.device} "
        f"{args.precision}: {args.videos} videos x {args.expressions} expressions x "
        f"{args.frames} frames of {height}x{width}"
    )
    memory = "peak CUDA MiB" if args.device.startswith("cuda") else "peak RSS MiB"
    print(
        f"{'mode':<10}{'load s':>8}{'cold s':>10}{'warm s':>10}{'s/expr':>10}{'frames/s':>10}{memory:>15}"
    )
    results = []
    for mode in modes:  # each row as soon as it is measured (full-size CPU runs are slow)
        results.append(measure(mode, args, root))
        print(_row(results[-1], args), flush=True)
    print(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

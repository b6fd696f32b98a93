"""One training step of a full-size model or propagator (random weights) on a generated clip:
time and peak memory, fp32 against bf16 (and fp16 on CUDA), beside the forward alone as the
reference.

    python bench/train/run.py [MODEL] [--variant full] [--frames 8] [--size 720x1280]
        [--batch 1] [--steps 3] [--device cpu] [--precisions fp32,bf16] [--threads N]

MODEL: soc, referformer, mutr (a clip of ``--frames`` frames and an expression), aot, deaot (a
sequence of ``--frames`` frames: reference, previous, current ones; upstream's video stage crops
464x464 after scaling the short side to 480 x [0.7, 1.3]), uninext_convnext, uninext_vith (a
(key, reference) pair at a short side of 480, long side at most 768; run with the UNINEXT
environment's Python: its denoising queries, every decoder layer, the reference pass, reid,
SimOTA and the masks of the matched queries).

Each precision runs in a fresh process (peak RSS on CPU, peak CUDA allocation on GPU): the
engine's own job (rvos_train.engine.prepare_job: the model's training forward, its criterion,
AdamW with upstream's groups, gradient clipping, autocast) on a generated Ref-YouTube-VOS train
split at ``--size``, resized by the model's training recipe (SOC: short side 360, long side at
most 640). Figures: the first step (cold) and the median of the others (warm) in seconds and
clips/s, and the reference "forward": the same clips through the training forward without
gradients (a step costs about three forwards: forward, backward of activations and of weights).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from queue import Empty
from typing import Any

import torch

from rvos_core.synthetic import VideoSpec, write_refytvos_train
from rvos_nn.testing import write_tokenizer
from rvos_train import distributed
from rvos_train.config import config_path, load_config
from rvos_train.engine import EngineSettings, epoch_batches, prepare_job, train_step


@dataclass(frozen=True)
class Benched:
    """How one model is benched: its shipped configuration, overrides of its data section (the
    training set on the generated video, augmentations off where they would change the size), the
    tokenizer it reads under PRETRAINED, and a fixed clip length (None: ``--frames``)."""

    config: str
    data: dict[str, str] = field(default_factory=dict)
    tokenizer: str | None = "roberta"
    frames: int | None = None


PROPAGATOR = Benched("video", {"data.sets": '["youtubevos"]'}, tokenizer=None)
# UNINEXT: the uninext recipe's short side 480 (one of upstream's 320..640), no crop, no flip; a
# clip is (key, reference). Run in the UNINEXT environment.
UNINEXT = Benched(
    "finetune",
    {"data.options.scales": "[480]", "data.options.crop_p": "0.0", "data.options.flip_p": "0.0"},
    tokenizer="bert",
    frames=2,
)
MODELS = {
    "soc": Benched("joint"),
    "referformer": Benched("scratch"),
    "mutr": Benched("joint"),
    "aot": PROPAGATOR,
    "deaot": PROPAGATOR,
    "uninext_convnext": UNINEXT,
    "uninext_vith": UNINEXT,
}
TOKENIZER_FOLDERS = {"roberta": "roberta-base", "bert": "bert-base-uncased"}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", default="soc", choices=sorted(MODELS))
    parser.add_argument("--variant", default="full")
    parser.add_argument("--frames", type=int, default=8, help="frames per clip (SOC's window: 8)")
    parser.add_argument("--size", default="720x1280", help="HxW of the generated video")
    parser.add_argument("--batch", type=int, default=1, help="clips per step (upstream: 1)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args(argv)
    args.frames = MODELS[args.model].frames or args.frames
    return args


def measure(args: argparse.Namespace, precision: str, root: Path) -> dict[str, Any]:
    """One precision in this process: the steps, then the forward-only reference."""
    if args.threads:
        torch.set_num_threads(args.threads)
    benched = MODELS[args.model]
    overrides = {
        "variant": f'"{args.variant}"',
        "init.source": '"random"',
        "data.sets": '["refytvos"]',
        "data.num_frames": str(args.frames),
        **benched.data,
        "optim.batch_size": str(args.batch),
        "optim.reference_gpus": "1",
    }
    config = load_config(config_path(args.model, benched.config), overrides)
    settings = EngineSettings(
        run=root / f"run-{precision}",
        data=root / "data",
        pretrained=root / "pretrained",
        device=args.device,
        precision=precision,
        workers=0,
    )
    job = prepare_job(config, settings, distributed.join(args.device))
    batches = list(_take(epoch_batches(job, 0, 0, args.steps), args.steps))
    times = [_timed(job, lambda i=i: train_step(job, i, [batches[i]])) for i in range(args.steps)]
    with torch.no_grad():
        forward = [_timed(job, lambda b=b: job.step_module(b, 0)) for b in batches]
    return {
        "precision": precision,
        "cold_s": times[0],
        "warm_s": statistics.median(times[1:] or times),
        "forward_s": statistics.median(forward[1:] or forward),
        "clips_per_s": args.batch / statistics.median(times[1:] or times),
        "frame_size": list(batches[0][0].frames.shape[-2:]),
        "peak_mib": _peak_mib(args.device),
    }


def _take(iterator, count: int):
    for _ in range(count):
        yield next(iterator)


def _timed(job, work) -> float:
    if job.world.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    work()
    if job.world.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _peak_mib(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(args: argparse.Namespace, precision: str, root: Path, queue) -> None:
    queue.put(measure(args, precision, root))


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    height, width = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        # one video per step: a propagator's training set has one sample per video
        specs = [
            VideoSpec(f"b{i:03d}", 2, max(args.frames, 8), (height, width))
            for i in range(args.steps)
        ]
        write_refytvos_train(root / "data", specs)
        tokenizer = MODELS[args.model].tokenizer
        if tokenizer is not None:
            write_tokenizer(root / "pretrained" / TOKENIZER_FOLDERS[tokenizer], tokenizer)
        rows = []
        context = get_context("spawn")
        for precision in args.precisions.split(","):
            queue = context.Queue()
            child = context.Process(target=_child, args=(args, precision, root, queue))
            child.start()
            rows.append(_result(child, queue, precision))
    _print(args, rows)
    return 0


def _result(child, queue, precision: str) -> dict[str, Any]:
    """The child's figures, or why there are none (a child killed by the kernel for memory)."""
    while True:
        try:
            row = queue.get(timeout=2)
        except Empty:
            if not child.is_alive():
                return {"precision": precision, "failed": f"exit status {child.exitcode}"}
            continue
        child.join()
        return row


def _print(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    sizes = [r["frame_size"] for r in rows if "frame_size" in r]
    size = "x".join(map(str, sizes[0])) if sizes else "?"
    print(
        f"{args.model} {args.variant}: one training step, {args.batch} clip(s) x {args.frames} "
        f"frames at {size} (model input), {args.device}, random weights"
    )
    print(
        f"{'precision':>9} {'cold s':>8} {'warm s':>8} {'clips/s':>8} {'forward s':>10} "
        f"{'step/fwd':>9} {'peak MiB':>9}"
    )
    for r in rows:
        if "failed" in r:  # -9: killed, on a CPU machine most likely for memory
            print(f"{r['precision']:>9} failed: {r['failed']}")
            continue
        ratio = r["warm_s"] / r["forward_s"]
        print(
            f"{r['precision']:>9} {r['cold_s']:8.2f} {r['warm_s']:8.2f} {r['clips_per_s']:8.3f} "
            f"{r['forward_s']:10.2f} {ratio:9.2f} {r['peak_mib']:9.0f}"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    sys.exit(main())

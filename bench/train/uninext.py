"""One training step of full-size UNINEXT ConvNeXt-L (random weights) on a generated (key,
reference) clip: time and peak memory per precision, beside the forward alone as the reference.

    python bench/train/uninext.py [--model uninext_convnext] [--size 720x1280] [--short 480]
        [--batch 1] [--steps 2] [--device cpu] [--precisions fp32] [--threads N]

The engine's own job, as bench/train/run.py measures it (whose timing, memory and printing this
reuses): UNINEXT's training forward (key frames with upstream's 200 denoising slots before the 900
proposals, every decoder layer, the reference frames, the reid head), its criterion (SimOTA per
layer, Hungarian on the encoder proposals, masks of the matched queries), AdamW with upstream's
groups and clipping at 0.1, on a generated Ref-YouTube-VOS train video resized by the uninext
recipe to the short side ``--short`` (one of upstream's 320..640, long side at most 768), no crop,
no flip. Upstream trains 2 clips per GPU; ``--batch`` says how many clips a step holds here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import run as base
import torch

from rvos_core.synthetic import VideoSpec, write_refytvos_train
from rvos_nn.testing import write_tokenizer
from rvos_train import distributed
from rvos_train.config import config_path, load_config
from rvos_train.engine import EngineSettings, epoch_batches, prepare_job, train_step


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model", default="uninext_convnext", choices=["uninext_convnext", "uninext_vith"]
    )
    parser.add_argument("--variant", default="full")
    parser.add_argument("--size", default="720x1280", help="HxW of the generated video")
    parser.add_argument("--short", type=int, default=480, help="short side after the resize")
    parser.add_argument("--batch", type=int, default=1, help="clips per step (upstream: 2)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", default="fp32")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args(argv)
    args.frames = 2
    return args


def measure(args: argparse.Namespace, precision: str, root: Path) -> dict[str, Any]:
    """One precision in this process: the steps, then the forward-only reference."""
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = {
        "variant": f'"{args.variant}"',
        "init.source": '"random"',
        "data.sets": '["refytvos"]',
        "data.options.scales": f"[{args.short}]",
        "data.options.crop_p": "0.0",
        "data.options.flip_p": "0.0",
        "optim.batch_size": str(args.batch),
        "optim.reference_gpus": "1",
    }
    config = load_config(config_path(args.model, "finetune"), overrides)
    settings = EngineSettings(
        run=root / f"run-{precision}",
        data=root / "data",
        pretrained=root / "pretrained",
        device=args.device,
        precision=precision,
        workers=0,
    )
    job = prepare_job(config, settings, distributed.join(args.device))
    batches = list(base._take(epoch_batches(job, 0, 0, args.steps), args.steps))
    times = [
        base._timed(job, lambda i=i: train_step(job, i, [batches[i]])) for i in range(args.steps)
    ]
    with torch.no_grad():
        forward = [base._timed(job, lambda b=b: job.step_module(b, 0)) for b in batches]
    warm = statistics.median(times[1:] or times)
    return {
        "precision": precision,
        "cold_s": times[0],
        "warm_s": warm,
        "forward_s": statistics.median(forward[1:] or forward),
        "clips_per_s": args.batch / warm,
        "frame_size": list(batches[0][0].size),
        "peak_mib": base._peak_mib(args.device),
    }


def _child(args: argparse.Namespace, precision: str, root: Path, queue) -> None:
    queue.put(measure(args, precision, root))


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    height, width = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_refytvos_train(root / "data", [VideoSpec("bench", 2, 8, (height, width))])
        write_tokenizer(root / "pretrained" / "bert-base-uncased", "bert")
        rows = []
        context = get_context("spawn")
        for precision in args.precisions.split(","):
            queue = context.Queue()
            child = context.Process(target=_child, args=(args, precision, root, queue))
            child.start()
            rows.append(base._result(child, queue, precision))
    args.model = f"{args.model} (key + reference)"
    base._print(args, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Test double of ``python -m rvos_vos.propagate``: same command line, copies the input run's masks
and scores into the output run (an identity "propagation"), so that the Make chain can be tested
without a propagator's weights."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rvos_core.cli import add_dataset_args, dataset_from_args, run_main
from rvos_core.runfolder import Run, RunWriter


def body(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("method", choices=("aot", "deaot"))
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device")
    parser.add_argument("--precision")
    add_dataset_args(parser)
    args = parser.parse_args(argv)
    dataset, source = dataset_from_args(args), Run(args.run)
    meta = {
        "producer": f"fake_propagate.{args.method}",
        "inputs": [str(args.run)],
        "value_domain": "binary",
        "has_scores": source.has_scores,
        "has_probs": False,
    }
    writer = RunWriter(args.out, dataset, meta)
    for video_id in writer.todo(dataset.videos):
        video = dataset.video(video_id)
        with writer.open_video(video) as out:
            for exp_id in video.exp_ids:
                out.write_masks(exp_id, source.masks(video, exp_id))
                if source.has_scores:
                    out.write_scores(exp_id, source.scores(video)[exp_id])
    writer.finalize()
    return 0


if __name__ == "__main__":
    sys.exit(run_main(body))

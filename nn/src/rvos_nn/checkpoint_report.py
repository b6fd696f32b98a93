"""``python -m rvos_nn.checkpoint_report MODEL CHECKPOINT [--variant V]``: what matches and what not.

Builds the registered model on the meta device (no memory for weights), compares the file with it
as strict loading would (``rvos_nn.checkpoint``) and prints the report: missing, unexpected and
mis-shaped keys grouped by prefix. Exits 0 when the file loads strictly, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch

from rvos_core.cli import path_arg, run_main
from rvos_core.command import Parser
from rvos_nn.checkpoint import check_checkpoint
from rvos_nn.predictor import load_model_entry


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m rvos_nn.checkpoint_report", description=__doc__)
    parser.add_argument("model", help="a registered model (entry point group rvos.models)")
    parser.add_argument("checkpoint", type=path_arg)
    parser.add_argument("--variant", help="model variant (default: the model's default)")
    return parser


def _report_main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    entry = load_model_entry(args.model)
    variant = entry.check_variant(args.variant)
    with torch.device("meta"):
        model = entry.build(variant)
    report = check_checkpoint(model, args.checkpoint, entry.checkpoint_rules)
    print(f"model {entry.name} (variant {variant})")
    print(report.format())
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_report_main, argv)


if __name__ == "__main__":
    sys.exit(main())

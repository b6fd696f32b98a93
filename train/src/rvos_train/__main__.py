"""``python -m rvos_train MODEL --config NAME``: train, fine-tune or resume one model.

::

    python -m rvos_train MODEL --config NAME|FILE.toml [--out DIR] [--data DIR]
        [--pretrained DIR] [--init CHECKPOINT] [--device cpu|cuda] [--precision fp32|bf16|fp16]
        [--workers N] [--checkpoint-every STEPS] [--log-every STEPS] [--stop-after STEPS]
        [--set key.sub=value ...]

Several processes: ``torchrun --standalone --nproc_per_node N -m rvos_train ...`` (one per GPU;
gloo on the CPU); no option of this command is a prefix of one of torchrun's. The run folder defaults to WORK/train/<model>-<config> (paths.env); running the same
command again resumes it from its newest checkpoint. The configurations are listed with
``--list``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rvos_core.cli import path_arg, run_main
from rvos_core.command import Parser
from rvos_core.errors import ConfigError
from rvos_core.paths import load_paths
from rvos_nn.precision import PRECISIONS
from rvos_train.config import config_path, load_config, shipped_configs
from rvos_train.engine import EngineSettings, train


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m rvos_train",
        description="Train, fine-tune or resume a model (a run folder per configuration).",
    )
    parser.add_argument("model", help="a registered model with training (soc, referformer, mutr)")
    parser.add_argument("--config", help="a shipped configuration name or a .toml file")
    parser.add_argument("--list", action="store_true", help="list the shipped configurations")
    parser.add_argument(
        "--out", type=path_arg, help="run folder (default: WORK/train/<model>-<config>)"
    )
    parser.add_argument("--data", type=path_arg, help="datasets root (default: DATA)")
    parser.add_argument(
        "--pretrained", type=path_arg, help="pretrained weights (default: PRETRAINED)"
    )
    parser.add_argument("--init", type=path_arg, help="checkpoint to start from (fine-tuning)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (one GPU per process)")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS)
    parser.add_argument("--workers", type=int, default=2, help="data-loading processes")
    parser.add_argument("--checkpoint-every", type=int, default=0, help="steps (0: epoch ends)")
    parser.add_argument("--log-every", type=int, default=10, help="steps between metric lines")
    parser.add_argument("--stop-after", type=int, help="stop after this many steps (resumable)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key"
    )
    return parser


def _overrides(items: Sequence[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key=value")
        pairs[key.strip()] = value.strip()
    return pairs


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        print("\n".join(shipped_configs(args.model)) or f"no configurations for {args.model}")
        return 0
    if not args.config:
        raise ConfigError("--config is required (--list shows the shipped ones)")
    config = load_config(config_path(args.model, args.config), _overrides(args.set))
    if config.model != args.model:
        raise ConfigError(f"configuration {args.config} trains {config.model}, not {args.model}")
    paths = load_paths() if None in (args.out, args.data, args.pretrained) else None
    settings = EngineSettings(
        run=args.out
        or paths.require_dir("WORK", "--out") / "train" / f"{args.model}-{config.name}",
        data=args.data or paths.require_dir("DATA", "--data"),
        pretrained=args.pretrained or paths.folder("PRETRAINED"),
        init=_existing(args.init),
        device=args.device,
        precision=args.precision,
        workers=args.workers,
        checkpoint_every=args.checkpoint_every,
        log_every=max(1, args.log_every),
        stop_after=args.stop_after,
    )
    summary = train(config, settings)
    if os.environ.get("RANK", "0") == "0":
        print(f"{settings.run}: {json.dumps(summary)}", file=sys.stderr)
    return 0


def _existing(path: Path | None) -> Path | None:
    if path is not None and not path.is_file():
        raise ConfigError(f"--init {path}: no such checkpoint file")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

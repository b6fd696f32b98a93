"""Start-up of every command: CPU seconds (user + system) of ``python -m <command> -h`` in a fresh
process (imports and the argument parser, nothing else), the median of ``--repeat`` runs, beside
the interpreter alone (``python -c pass``) and ``import numpy`` as the floor.

    python bench/startup/run.py [--repeat 5] [--python PATH]

Targets (issue "Fast end to end"): the torch-free stages (vote, submission, validate, evaluate,
report) under 0.3 s. Run it twice: the first run may compile bytecode that the environment lacks.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

FLOOR = {
    "python -c pass": ["-c", "pass"],
    "import numpy": ["-c", "import numpy"],
}
COMMANDS = {
    "vote": ["-m", "rvos_fusion", "vote", "-h"],
    "submission": ["-m", "rvos_fusion", "submission", "-h"],
    "split-pth": ["-m", "rvos_fusion", "split-pth", "-h"],
    "validate": ["-m", "rvos_core.validate", "-h"],
    "evaluate": ["-m", "rvos_eval", "-h"],
    "report": ["-m", "rvos_report", "-h"],
    "recipe": ["-m", "rvos_core.recipe", "list"],
    "infer (torch)": ["-m", "rvos_nn.infer", "-h"],
    "propagate (torch)": ["-m", "rvos_vos.propagate", "-h"],
    "train (torch)": ["-m", "rvos_train", "-h"],
}
TORCH_FREE = ("vote", "submission", "validate", "evaluate", "report")
TORCH_FREE_TARGET_S = 0.3


def cpu_seconds(python: str, arguments: list[str]) -> float:
    """CPU time of one child process running ``python arguments``."""
    before = os.times()
    subprocess.run([python, *arguments], capture_output=True, check=True)
    after = os.times()
    return (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args(argv)
    print(f"{'command':<20} {'CPU s':>7}  (median of {args.repeat}, {args.python})")
    for name, arguments in {**FLOOR, **COMMANDS}.items():
        median = statistics.median(cpu_seconds(args.python, arguments) for _ in range(args.repeat))
        flag = ""
        if name in TORCH_FREE:
            flag = "ok" if median < TORCH_FREE_TARGET_S else f"over {TORCH_FREE_TARGET_S} s"
        print(f"{name:<20} {median:7.3f}  {flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

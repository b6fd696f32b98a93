"""The validation hook: the checkpoint of an epoch through the real inference driver
(``python -m rvos_nn.infer``) on a held-out split, then J&F with ``python -m rvos_eval`` (MeViS
valid_u, Ref-DAVIS). Both run as separate processes, exactly as a user would run them, so the
number is the one ``make infer-<model>`` + ``make evaluate`` would give.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rvos_core.errors import ConfigError

EVALUATED = ("mevis", "refdavis")


@dataclass(frozen=True)
class ValidationJob:
    """One validation: the model, its weights, the data and where to write."""

    model: str
    variant: str
    checkpoint: Path
    pretrained: Path
    data: Path
    dataset: str
    split: str
    device: str
    out: Path


def validate(job: ValidationJob) -> dict[str, float]:
    """Run the model and the evaluation; returns {"J", "F", "J&F"}."""
    if job.dataset not in EVALUATED:
        raise ConfigError(f"validation needs ground truth: dataset must be one of {EVALUATED}")
    run = job.out / "run"
    data = {"--data": str(job.data), "--dataset": job.dataset, "--split": job.split}
    run_module(
        ["rvos_nn.infer", job.model],
        {
            "--variant": job.variant,
            "--checkpoint": str(job.checkpoint),
            "--pretrained": str(job.pretrained),
            "--device": job.device,
            "--out": str(run),
            **data,
        },
    )
    scores = job.out / "eval"
    options = {**data, "--out": str(scores), "--workers": "1"}
    summary = run_module(["rvos_eval", str(run)], options, scores / "summary.json")
    return {key: float(summary[key]) for key in ("J", "F", "J&F")}


def run_module(
    arguments: list[str], options: dict[str, str], result: Path | None = None
) -> dict[str, Any]:
    """``python -m <arguments> <options>``, then the JSON file ``result`` it wrote (if given); a
    failure is a ConfigError with its last line."""
    flat = [item for pair in options.items() for item in pair]
    done = subprocess.run(
        [sys.executable, "-m", *arguments, *flat], capture_output=True, text=True, check=False
    )
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise ConfigError(f"validation step {arguments[0]} failed: {last}")
    return {} if result is None else json.loads(result.read_text())

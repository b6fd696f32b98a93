"""The training Make targets: usage errors name what is missing; train-tiny generates its world
and trains (a few steps here) into $(WORK)/train/<model>-tiny."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-C", str(ROOT), *args, f"PY={sys.executable}"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "RVOS_PROGRESS": "0", "OMP_NUM_THREADS": "2"},
    )


def test_usage_errors_name_what_is_missing(tmp_path: Path) -> None:
    for args, word in ((["train"], "MODEL="), (["finetune", "MODEL=soc"], "INIT=")):
        result = make(*args, f"WORK={tmp_path}")
        assert result.returncode != 0 and word in result.stderr, (args, result.stderr)


def test_train_tiny_generates_its_world_and_trains(tmp_path: Path) -> None:
    options = "--stop-after 2 --workers 0 --set optim.epochs=1"
    result = make("train-tiny", "MODEL=referformer", f"WORK={tmp_path}", f"TRAIN_OPTS={options}")
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "train" / "referformer-tiny"
    assert (tmp_path / "generated" / "generated.json").is_file()
    assert (run / "checkpoints" / "step-00000002" / "model.pth").is_file()
    assert (run / "config.json").is_file() and not (run / "done.json").exists()

"""``make segment`` end to end, as a user runs it: a clip written with PyAV, two texts, one model
(the test double of nn/tests/nn_double.py, registered through a temporary entry point, with a
tiny random checkpoint), through Make, to the masks and the overlay video; and the stop with a
missing checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rvos_core.masks import read_mask_png
from rvos_core.paths import VARIABLES
from rvos_nn.testing import write_tokenizer
from rvos_report.mp4 import decode_video, write_mp4

ROOT = Path(__file__).resolve().parents[1]
NN_TESTS = ROOT / "nn" / "tests"
TEXTS = ("the red blob", 'the blob\'s "twin"')


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tokenizer, an empty CHECKPOINTS, the test double registered, a clip."""
    root = tmp_path_factory.mktemp("segment")
    sys.path.insert(0, str(NN_TESTS))
    from nn_double import save_checkpoint, write_entry_points

    write_entry_points(root / "entry_points", {"rvos.models": {"double": "nn_double:ENTRY"}})
    write_tokenizer(root / "pretrained" / "roberta-base", "roberta")
    (root / "checkpoints").mkdir()
    (root / "zoo").mkdir()
    save_checkpoint(root / "zoo" / "double.pth")
    frames = [np.full((48, 64, 3), 15 * t, np.uint8) for t in range(11)]
    write_mp4(root / "clip.mp4", frames, 30)
    return root


def make_segment(home: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    python_path = [str(NN_TESTS), str(home / "entry_points"), clean.get("PYTHONPATH", "")]
    env = {
        **clean,
        "PYTHONPATH": os.pathsep.join(p for p in python_path if p),
        "RVOS_PROGRESS": "0",
    }
    command = ["make", "-C", str(ROOT), "segment", f"VIDEO={home / 'clip.mp4'}", "MODEL=double"]
    command += [f"CHECKPOINTS={home / 'checkpoints'}", f"PRETRAINED={home / 'pretrained'}"]
    command += [f"WORK={home / 'work'}", f"DATA={home}"]
    command += [
        f"TEXT={TEXTS[0]}",
        f"TEXT2={TEXTS[1]}",
        f"SEGMENT_OUT={out}",
        f"PY={sys.executable}",
    ]
    return subprocess.run([*command, *extra], capture_output=True, text=True, env=env, check=False)


def test_a_missing_checkpoint_stops_before_anything_runs(home: Path) -> None:
    done = make_segment(home, home / "out-missing")
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in done.stderr
    assert f"{home / 'checkpoints' / 'double.pth'} (model double)" in errors[0]
    assert "Checkpoints and tokenizers" in errors[0]
    assert not (home / "out-missing").exists()


def test_the_zoo_runs_the_model_on_the_clip_and_says_so(home: Path) -> None:
    out = home / "out"
    done = make_segment(home, out, f"ZOO={home / 'zoo'}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (
        "THE TINY ZOO STANDS IN" in done.stderr and str(home / "zoo" / "double.pth") in done.stderr
    )
    for exp_id in ("0", "1"):  # one expression per text, every 5th frame of 11
        names = sorted(p.name for p in (out / "masks" / exp_id).iterdir())
        assert names == ["00000.png", "00005.png", "00010.png"]
        assert read_mask_png(out / "masks" / exp_id / "00005.png").shape == (48, 64)
    frames = list(decode_video(out / "overlay.mp4"))
    assert len(frames) == 3 and frames[0].rgb.shape == (360, 2 * 480 + 4, 3)
    assert sorted(p.name for p in out.iterdir()) == ["masks", "overlay.mp4"]
    assert [p.name for p in home.iterdir() if p.name.startswith(".out")] == []  # tree removed

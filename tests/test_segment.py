"""``make segment`` end to end, as a user runs it: a clip written with PyAV, two texts, one model
(the test double of nn/tests/nn_double.py, registered through a temporary entry point, its tiny
random weights in a zoo folder as make zoo writes it), through Make, to the masks and the overlay
video; and the stop with a missing checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rvos_core.masks import read_mask_png
from rvos_core.paths import VARIABLES
from rvos_nn.testing import write_tokenizer
from rvos_nn.zoo import MANIFEST, VERSION, file_sha256, write_weights
from rvos_report.mp4 import decode_video, write_mp4

ROOT = Path(__file__).resolve().parents[1]
NN_TESTS = ROOT / "nn" / "tests"
TEXTS = ("the red blob", 'the blob\'s "twin"')


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty CHECKPOINTS and PRETRAINED, the test double registered, a zoo of it (which alone
    holds a tokenizer), a zoo without it, a clip."""
    root = tmp_path_factory.mktemp("segment")
    sys.path.insert(0, str(NN_TESTS))
    from nn_double import save_checkpoint, write_entry_points

    write_entry_points(root / "entry_points", {"rvos.models": {"double": "nn_double:ENTRY"}})
    for folder in ("checkpoints", "pretrained", "zoo", "other-zoo"):
        (root / folder).mkdir()
    state = save_checkpoint(root / "double.pth")
    write_zoo(root / "zoo", "double", write_weights(state, root / "zoo" / "double.safetensors"))
    write_tokenizer(root / "zoo" / "pretrained" / "roberta-base", "roberta")
    write_zoo(
        root / "other-zoo", "other", write_weights(state, root / "other-zoo" / "o.safetensors")
    )
    frames = [np.full((48, 64, 3), 15 * t, np.uint8) for t in range(11)]
    write_mp4(root / "clip.mp4", frames, 30)
    return root


def write_zoo(folder: Path, name: str, weights: Path) -> None:
    """The manifest of a zoo folder holding ``weights`` as the model ``name``."""
    entry = {"kind": "model", "file": weights.name, "sha256": file_sha256(weights)}
    entries = {name: {**entry, "variant": "tiny"}}
    (folder / MANIFEST).write_text(json.dumps({"version": VERSION, "entries": entries}))


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
    done = make_segment(home, home / "out-missing", f"ZOO={home / 'other-zoo'}")
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"the zoo {home / 'other-zoo'} does not stand in" in done.stderr
    assert "THE TINY ZOO" not in done.stderr and not (home / "out-missing").exists()


def test_the_zoo_runs_the_model_on_the_clip_and_says_so(home: Path) -> None:
    out = home / "out"
    done = make_segment(home, out, f"ZOO={home / 'zoo'}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "THE TINY ZOO STANDS IN" in done.stderr
    assert f"model double: {home / 'zoo' / 'double.safetensors'}" in done.stderr
    # the model ran with --zoo: its tokenizer is the zoo's (PRETRAINED is empty)
    assert f"--zoo {home / 'zoo'}" in done.stdout
    for exp_id in ("0", "1"):  # one expression per text, every 5th frame of 11
        names = sorted(p.name for p in (out / "masks" / exp_id).iterdir())
        assert names == ["00000.png", "00005.png", "00010.png"]
        assert read_mask_png(out / "masks" / exp_id / "00005.png").shape == (48, 64)
    frames = list(decode_video(out / "overlay.mp4"))
    assert len(frames) == 3 and frames[0].rgb.shape == (360, 2 * 480 + 4, 3)
    assert sorted(p.name for p in out.iterdir()) == ["masks", "overlay.mp4"]
    assert [p.name for p in home.iterdir() if p.name.startswith(".out")] == []  # tree removed

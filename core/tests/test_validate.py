from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from core_testlib import write_all
from PIL import Image

from rvos_core.data import Dataset
from rvos_core.masks import encode_mask_png
from rvos_core.validate import main


def validate(run: Path, data: Path) -> int:
    return main([str(run), "--data", str(data), "--split", "valid"])


def test_valid_run(
    tmp_path: Path, small_data: Path, small_dataset: Dataset, capsys: pytest.CaptureFixture
) -> None:
    write_all(tmp_path / "run", small_dataset)
    assert validate(tmp_path / "run", small_data) == 0
    assert "valid (3 videos, 23 masks)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda r: (r / "Annotations/vid_b/1/00005.png").unlink(),
            "vid_b/1/00005.png: mask PNG is missing",
        ),
        (
            lambda r: (r / "Annotations/vid_a/0/00000.png").write_bytes(
                encode_mask_png(np.ones((5, 5), bool))
            ),
            "is 5x5, expected 24x32",
        ),
        (
            lambda r: (r / "Annotations/vid_a/0/00000.png").write_bytes(
                b"\x89PNG\r\n\x1a\n broken"
            ),
            "not a PNG",
        ),
        (
            lambda r: (r / "Annotations/extra_video").mkdir(),
            "extra_video: video is not in refytvos/valid",
        ),
        (
            lambda r: (r / "key_frame.json").write_text('{"vid_a": {}}'),
            "vid_a/0 is None, scores say",
        ),
    ],
)
def test_damaged_runs(
    tmp_path: Path,
    small_data: Path,
    small_dataset: Dataset,
    capsys: pytest.CaptureFixture,
    damage,
    message: str,
) -> None:
    write_all(tmp_path / "run", small_dataset)
    damage(tmp_path / "run")
    assert validate(tmp_path / "run", small_data) == 1
    assert message in capsys.readouterr().out


def test_incomplete_run_is_an_error(
    tmp_path: Path, small_data: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "run").mkdir()
    assert validate(tmp_path / "run", small_data) == 2
    assert "is incomplete (no run.json)" in capsys.readouterr().err


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-40])


def _resize(path: Path) -> None:
    Image.new("RGB", (8, 6)).save(path, "JPEG")


@pytest.mark.parametrize(
    ("damage", "message"),
    [(_truncate, "unreadable image: image file is truncated"), (_resize, "frame is 6x8")],
)
def test_damaged_frames(
    tmp_path: Path,
    small_data: Path,
    small_dataset: Dataset,
    capsys: pytest.CaptureFixture,
    damage: Callable[[Path], None],
    message: str,
) -> None:
    write_all(tmp_path / "run", small_dataset)
    video = small_dataset.video("vid_b")
    frame = video.frame_path(video.frames[2])
    damage(frame)
    assert validate(tmp_path / "run", small_data) == 1
    problems = capsys.readouterr().out.splitlines()
    assert problems[0].startswith(f"{frame}: {message}")
    assert problems[1:] == [f"{tmp_path / 'run'}: 1 problems"]

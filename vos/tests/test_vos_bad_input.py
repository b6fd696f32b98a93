"""Bad input: a clear error naming the file, exit status 2, and no output folder at all."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from vos_testlib import Setup, clip_length, load_pt, make_setup, write_checkpoint

from rvos_core.masks import encode_mask_png
from rvos_vos.propagate import main

pytestmark = pytest.mark.parity


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    key = load_pt("aot", "trace_bidirectional.pt")["key_frame"]
    return make_setup("aot", tmp_path, {"v": 2}, {"v": {"0": key, "1": key}})


def edit_key_frames(setup: Setup, change: Callable[[dict], None]) -> Path:
    path = setup.run.root / "key_frame.json"
    table = json.loads(path.read_text())
    change(table)
    path.write_text(json.dumps(table))
    return path


def frame_path(setup: Setup, t: int) -> Path:
    video = setup.dataset.video("v")
    return video.frame_path(video.frames[t])


def fails(setup: Setup, capsys: pytest.CaptureFixture, names: Path, *extra: str) -> str:
    out = setup.root / "out"
    assert main(setup.argv(out, *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(names) in err
    assert not out.exists()
    return err


def test_missing_key_frame_entry(setup: Setup, capsys: pytest.CaptureFixture) -> None:
    path = edit_key_frames(setup, lambda table: table["v"].pop("1"))
    assert "v/1 is missing" in fails(setup, capsys, path)


def test_key_frame_out_of_range(setup: Setup, capsys: pytest.CaptureFixture) -> None:
    count = len(setup.dataset.video("v").frames)

    def change(table: dict) -> None:
        table["v"]["0"]["index_info"]["class_index"] = count

    path = edit_key_frames(setup, change)
    assert "outside" in fails(setup, capsys, path)


def test_key_frame_that_is_not_the_scores_maximum(
    setup: Setup, capsys: pytest.CaptureFixture
) -> None:
    def change(table: dict) -> None:
        key = table["v"]["0"]["index_info"]["class_index"]
        table["v"]["0"]["index_info"]["class_index"] = (key + 1) % clip_length("aot")

    path = edit_key_frames(setup, change)
    assert "first maximum" in fails(setup, capsys, path)


def test_missing_frame(setup: Setup, capsys: pytest.CaptureFixture) -> None:
    path = frame_path(setup, clip_length("aot") - 1)
    path.unlink()
    assert "missing" in fails(setup, capsys, path)


def test_frame_of_another_size(setup: Setup, capsys: pytest.CaptureFixture) -> None:
    path = frame_path(setup, clip_length("aot") - 1)  # not the first: the first sets the size
    image = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
    path.write_bytes(cv2.imencode(".png", image[:-8])[1].tobytes())
    assert "first is" in fails(setup, capsys, path)


def test_masks_of_another_size_than_the_frames(setup: Setup, capsys: pytest.CaptureFixture) -> None:
    video = setup.dataset.video("v")
    key = setup.trace["key_frame"]
    path = setup.run.mask_path("v", "0", video.frames[key])
    height, width = setup.trace["key_mask"].shape
    path.write_bytes(encode_mask_png(np.ones((height // 2, width), bool)))
    assert "the frames of video v are" in fails(setup, capsys, path)


def test_unreadable_frame(setup: Setup, capsys: pytest.CaptureFixture) -> None:
    path = frame_path(setup, 0)
    path.write_bytes(b"not an image")
    assert "unreadable" in fails(setup, capsys, path)


def test_incomplete_input_run(setup: Setup, capsys: pytest.CaptureFixture) -> None:
    (setup.run.root / "run.json").unlink()
    assert "incomplete" in fails(setup, capsys, setup.run.root)


def test_checkpoint_of_the_other_propagator(setup: Setup, capsys: pytest.CaptureFixture) -> None:
    path = write_checkpoint("deaot", setup.root / "deaot.pth")
    setup.checkpoint = path
    assert "deaot checkpoint" in fails(setup, capsys, path)


def test_damaged_checkpoint(setup: Setup, capsys: pytest.CaptureFixture) -> None:
    setup.checkpoint.write_bytes(setup.checkpoint.read_bytes()[:1000])
    assert "not a readable PyTorch checkpoint" in fails(setup, capsys, setup.checkpoint)

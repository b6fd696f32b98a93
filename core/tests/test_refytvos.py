from __future__ import annotations

import json
from pathlib import Path

import pytest

from rvos_core.data import open_dataset, open_image
from rvos_core.errors import InputError
from rvos_core.synthetic import VideoSpec, write_refytvos


def test_reads_meta_in_order(small_data: Path) -> None:
    dataset = open_dataset("refytvos", small_data, "valid")
    assert list(dataset.videos) == ["vid_a", "vid_b", "vid_c"]
    video = dataset.video("vid_a")
    assert video.exp_ids == ("0", "1", "2")
    assert video.frames == ("00000", "00005", "00010", "00015")
    assert video.frame_size() == (24, 32)
    assert open_image(video.frame_paths()[0]).size == (32, 24)
    assert dataset.grouping == "pairs"


def test_valid_split_excludes_test_videos(tmp_path: Path) -> None:
    specs = [VideoSpec(v, 2, 2, (8, 8)) for v in ("a", "b", "c")]
    write_refytvos(tmp_path, "valid", specs, frames=False)
    write_refytvos(tmp_path, "test", specs[1:2], frames=False)
    assert list(open_dataset("refytvos", tmp_path, "valid").videos) == ["a", "c"]
    assert list(open_dataset("refytvos", tmp_path, "test").videos) == ["b"]


def test_missing_meta_names_the_file(tmp_path: Path) -> None:
    write_refytvos(tmp_path, "valid", [VideoSpec("a", 1, 1, (8, 8))], frames=False)
    with pytest.raises(InputError, match=r"test/meta_expressions.json: file is missing"):
        open_dataset("refytvos", tmp_path, "test")


def test_no_dataset_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no Ref-YouTube-VOS here"):
        open_dataset("refytvos", tmp_path, "valid")


def test_frame_listed_but_absent_and_unreadable(small_data: Path) -> None:
    video = open_dataset("refytvos", small_data, "valid").video("vid_b")
    path = video.frame_path("00005")
    path.write_bytes(b"\xff\xd8 broken jpeg")
    with pytest.raises(InputError, match="unreadable image"):
        open_image(path)
    path.unlink()
    with pytest.raises(
        InputError, match=r"00005\.jpg: frame listed in the meta of video vid_b is missing"
    ):
        video.frame_paths()


@pytest.mark.parametrize("bad_id", ["../escape", "a/b", "..", ".hidden", ""])
def test_unsafe_video_ids_are_refused(tmp_path: Path, bad_id: str) -> None:
    meta = tmp_path / "meta_expressions" / "valid" / "meta_expressions.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(
        json.dumps({"videos": {bad_id: {"expressions": {"0": {"exp": "x"}}, "frames": ["00000"]}}})
    )
    with pytest.raises(InputError, match=r"video id .* is not"):
        open_dataset("refytvos", tmp_path, "valid")


@pytest.mark.parametrize(
    "entry",
    [
        {"expressions": {}},
        {"frames": ["00000"]},
        {"frames": [], "expressions": {}},
        {"frames": ["0", "0"], "expressions": {}},
    ],
)
def test_malformed_meta_entries(tmp_path: Path, entry: dict) -> None:
    meta = tmp_path / "meta_expressions" / "valid" / "meta_expressions.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"videos": {"v": entry}}))
    with pytest.raises(InputError, match=r"meta_expressions\.json"):
        open_dataset("refytvos", tmp_path, "valid")


def test_malformed_json(tmp_path: Path) -> None:
    meta = tmp_path / "meta_expressions" / "valid" / "meta_expressions.json"
    meta.parent.mkdir(parents=True)
    meta.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        open_dataset("refytvos", tmp_path, "valid")

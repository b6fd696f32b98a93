from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from rvos_core.data import open_dataset
from rvos_core.data.refdavis import RUNS, annotation_dir, annotator_runs
from rvos_core.errors import InputError


def write_refdavis(data: Path, videos: dict[str, tuple[int, int]], split: str = "valid") -> Path:
    """ReferFormer's converted layout under data/ref-davis: video -> (objects, frames)."""
    root = data / "ref-davis"
    meta = {"videos": {}}
    for video, (objects, frames) in videos.items():
        names = [f"{t:05d}" for t in range(frames)]
        expressions = {
            str(4 * k + a): {"exp": f"object {k + 1}, text {a}", "obj_id": str(k + 1)}
            for k in range(objects)
            for a in range(4)
        }
        meta["videos"][video] = {"expressions": expressions, "frames": names}
        folder = root / split / "JPEGImages" / video
        folder.mkdir(parents=True)
        for name in names:
            Image.new("RGB", (8, 6)).save(folder / f"{name}.jpg")
    meta_file = root / "meta_expressions" / split / "meta_expressions.json"
    meta_file.parent.mkdir(parents=True)
    meta_file.write_text(json.dumps(meta))
    return root


def test_reads_videos_and_the_four_annotator_runs(tmp_path: Path) -> None:
    root = write_refdavis(tmp_path, {"v2": (1, 2), "v1": (2, 3)})
    dataset = open_dataset("refdavis", tmp_path, "valid")
    assert list(dataset.videos) == ["v1", "v2"] and dataset.grouping == "none"
    v1 = dataset.video("v1")
    assert v1.frames == ("00000", "00001", "00002") and v1.expressions[5].obj_ids == (2,)
    assert annotator_runs(v1) == (("0", "4"), ("1", "5"), ("2", "6"), ("3", "7"))
    assert annotator_runs(dataset.video("v2")) == (("0",), ("1",), ("2",), ("3",))
    assert RUNS == ("anno_0", "anno_1", "anno_2", "anno_3")
    assert annotation_dir(dataset, "v1") == root / "valid" / "Annotations" / "v1"
    assert v1.frame_paths()[0] == root / "valid" / "JPEGImages" / "v1" / "00000.jpg"
    assert open_dataset("refdavis", root, "valid").root == root


def test_missing_meta_split_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no Ref-DAVIS17 here"):
        open_dataset("refdavis", tmp_path, "valid")
    write_refdavis(tmp_path, {"v": (1, 1)})
    with pytest.raises(InputError, match="splits"):
        open_dataset("refdavis", tmp_path, "test")
    with pytest.raises(InputError, match=r"train/meta_expressions\.json: file is missing"):
        open_dataset("refdavis", tmp_path, "train")


def test_listed_frame_absent(tmp_path: Path) -> None:
    root = write_refdavis(tmp_path, {"v": (1, 3)})
    missing = root / "valid" / "JPEGImages" / "v" / "00001.jpg"
    missing.unlink()
    with pytest.raises(InputError, match=f"{missing}: frame listed in the meta of video v"):
        open_dataset("refdavis", tmp_path, "valid")
    for path in missing.parent.iterdir():
        path.unlink()
    missing.parent.rmdir()
    with pytest.raises(InputError, match=f"{missing.parent}: frame folder of video v is missing"):
        open_dataset("refdavis", tmp_path, "valid")


def test_expressions_must_come_in_fours(tmp_path: Path) -> None:
    root = write_refdavis(tmp_path, {"v": (1, 1)})
    meta_file = root / "meta_expressions" / "valid" / "meta_expressions.json"
    meta = json.loads(meta_file.read_text())
    del meta["videos"]["v"]["expressions"]["3"]
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(InputError, match="video v has 3 expressions; Ref-DAVIS17 needs four"):
        open_dataset("refdavis", tmp_path, "valid")

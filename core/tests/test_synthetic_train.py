"""The generated training layouts: deterministic, and annotated as the frames show."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from rvos_core.synthetic import VideoSpec, label_maps, rle_encode, write_training_data

SPECS = [VideoSpec("v0", 3, 4, (24, 32)), VideoSpec("v1", 1, 3, (20, 28))]


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    first = files(write_training_data(tmp_path / "a", SPECS, seed=2))
    assert first == files(write_training_data(tmp_path / "b", SPECS, seed=2))
    assert first != files(write_training_data(tmp_path / "c", SPECS, seed=3))


def test_refytvos_train_annotations_match_labels(tmp_path: Path) -> None:
    bench = write_training_data(tmp_path, SPECS) / "refer_youtube_vos"
    labels = label_maps(SPECS[0])
    png = Image.open(bench / "train/Annotations/v0/00005.png")
    assert png.mode == "P" and np.array_equal(np.asarray(png), labels[1])
    objects = json.loads((bench / "train/meta.json").read_text())["videos"]["v0"]["objects"]
    shown = [n for t, n in enumerate(SPECS[0].frame_names) if (labels[t] == 2).any()]
    assert objects["2"]["frames"] == shown
    meta = json.loads((bench / "meta_expressions/train/meta_expressions.json").read_text())
    expressions = meta["videos"]["v0"]["expressions"]
    assert [e["obj_id"] for e in expressions.values()] == ["1", "1", "2"]
    assert expressions["1"]["exp"].endswith(("on the left", "on the right"))


def test_mevis_train_has_a_two_object_expression(tmp_path: Path) -> None:
    bench = write_training_data(tmp_path, SPECS) / "mevis"
    meta = json.loads((bench / "train/meta_expressions.json").read_text())["videos"]
    assert meta["v0"]["expressions"]["3"]["anno_id"] == ["0", "1"]
    assert list(meta["v1"]["expressions"]) == ["0"]
    mask_dict = json.loads((bench / "train/mask_dict.json").read_text())
    assert sorted(mask_dict) == ["0", "1", "2"] and len(mask_dict["2"]) == 3


def test_rle_of_simple_masks() -> None:
    mask = np.zeros((3, 2), bool)
    mask[1:, 1] = True  # column-major runs: 4 zeros, 2 ones
    assert rle_encode(mask) == {"size": [3, 2], "counts": "42"}
    assert rle_encode(np.ones((2, 2), bool))["counts"] == "04"

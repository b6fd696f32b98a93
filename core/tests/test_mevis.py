from __future__ import annotations

import json
from pathlib import Path

import pytest

from rvos_core.data import open_dataset
from rvos_core.errors import InputError


def write_mevis(root: Path, split: str) -> None:
    meta = {
        "videos": {
            "v2": {
                "expressions": {"0": {"exp": "a", "obj_id": [1], "anno_id": [7]}},
                "frames": ["00000", "00001"],
                "vid_id": 2,
            },
            "v1": {
                "expressions": {
                    "0": {"exp": "b", "obj_id": [0, 1], "anno_id": [3, 4]},
                    "1": {"exp": "c", "obj_id": [0], "anno_id": [3]},
                },
                "frames": ["00000"],
                "vid_id": 1,
            },
        }
    }
    (root / "mevis" / split).mkdir(parents=True)
    (root / "mevis" / split / "meta_expressions.json").write_text(json.dumps(meta))


def test_reads_mevis(tmp_path: Path) -> None:
    write_mevis(tmp_path, "valid_u")
    dataset = open_dataset("mevis", tmp_path, "valid_u")
    assert list(dataset.videos) == ["v1", "v2"]
    assert dataset.grouping == "none"
    first = dataset.video("v1").expressions[0]
    assert first.obj_ids == (0, 1) and first.anno_ids == ("3", "4")
    assert dataset.extra["mask_dict"] == tmp_path / "mevis" / "valid_u" / "mask_dict.json"


def test_unknown_split_and_missing_meta(tmp_path: Path) -> None:
    write_mevis(tmp_path, "valid_u")
    with pytest.raises(InputError, match="MeViS has splits"):
        open_dataset("mevis", tmp_path, "val")
    with pytest.raises(InputError, match=r"valid/meta_expressions\.json: file is missing"):
        open_dataset("mevis", tmp_path, "valid")

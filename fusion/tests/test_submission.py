from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fusion_testlib import bits, make_run

from rvos_core.data import Dataset, open_dataset
from rvos_core.errors import InputError
from rvos_fusion.submission import write_submission


@pytest.fixture
def run(tmp_path: Path, tiny: Dataset):
    return make_run(tmp_path / "run", tiny, {e: bits("0110", "1000") for e in "012"})


def test_refytvos_layout_and_deterministic_bytes(tmp_path: Path, tiny: Dataset, run) -> None:
    assert write_submission(run, tiny, tmp_path / "a.zip") == 6
    write_submission(run, tiny, tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        names = archive.namelist()
    assert names[0] == "Annotations/v/0/00000.png" and len(names) == 6
    assert all(n.startswith("Annotations/v/") for n in names)


def test_mevis_layout_has_video_folders_at_the_root(tmp_path: Path, tiny: Dataset) -> None:
    meta = json.loads(tiny.meta_path.read_text())
    (tmp_path / "mevis" / "valid").mkdir(parents=True)
    (tmp_path / "mevis" / "valid" / "meta_expressions.json").write_text(json.dumps(meta))
    mevis = open_dataset("mevis", tmp_path / "mevis", "valid")
    run = make_run(tmp_path / "mrun", mevis, {e: bits("0110", "1000") for e in "012"})
    write_submission(run, mevis, tmp_path / "m.zip")
    with zipfile.ZipFile(tmp_path / "m.zip") as archive:
        assert sorted(archive.namelist())[0] == "v/0/00000.png"


def test_incomplete_run_writes_no_zip(tmp_path: Path, tiny: Dataset, run) -> None:
    (run.root / "Annotations" / "v" / "1" / "00005.png").unlink()
    with pytest.raises(InputError, match=r"v/1/00005\.png: mask PNG is missing"):
        write_submission(run, tiny, tmp_path / "s.zip")
    assert list(tmp_path.glob("*.zip")) == [] and list(tmp_path.glob(".s.zip*")) == []


def test_damaged_png_writes_no_zip(tmp_path: Path, tiny: Dataset, run) -> None:
    pixels = np.full((1, 4), 128, np.uint8)
    import cv2

    (run.root / "Annotations" / "v" / "2" / "00000.png").write_bytes(
        cv2.imencode(".png", pixels)[1].tobytes()
    )
    with pytest.raises(InputError, match="values other than 0 and 255"):
        write_submission(run, tiny, tmp_path / "s.zip")
    assert not (tmp_path / "s.zip").exists()

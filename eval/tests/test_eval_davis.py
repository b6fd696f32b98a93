"""DAVIS protocols on hand-made indexed PNG sequences (6x8 frames, whole-object predictions)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from eval_testlib import close, write_davis, write_gray, write_labels

from rvos_core.errors import InputError
from rvos_eval import davis
from rvos_eval.cli import main

SHAPE = (6, 8)


def labels(frames: int, boxes: dict[int, tuple[int, int, int, int]]) -> np.ndarray:
    """uint8 [T, H, W] with label k on rows y0:y1, cols x0:x1 of ``boxes[k]`` in every frame."""
    out = np.zeros((frames, *SHAPE), np.uint8)
    for k, (y0, y1, x0, x1) in boxes.items():
        out[:, y0:y1, x0:x1] = k
    return out


OBJECTS = {1: (0, 3, 0, 3), 2: (3, 6, 4, 8)}


def semi_dataset(tmp_path: Path) -> tuple[Path, Path]:
    """4 frames, objects 1 and 2; a void ring and (from frame 2 on) an object 3 to be ignored."""
    gt = labels(4, OBJECTS)
    gt[:, 0:4, 3] = davis.VOID
    gt[2:, 0, 6:8] = 3
    root = write_davis(tmp_path / "DAVIS", "val", "Annotations", {"seq": gt})
    results = tmp_path / "results"
    write_labels(results / "seq", labels(4, OBJECTS))
    return root, results


def test_semi_supervised_perfect_middle_frames(tmp_path: Path) -> None:
    root, results = semi_dataset(tmp_path)
    (results / "seq" / "00000.png").unlink()  # first and last frame are never read
    write_gray(results / "seq" / "00003.png", np.full(SHAPE, 9, np.uint8))
    result = davis.evaluate(root, "valid", "semi-supervised", results)
    assert [(o.name, o.frames) for o in result.objects] == [
        ("seq_1", ("00001", "00002")),
        ("seq_2", ("00001", "00002")),
    ]
    assert result.table["J&F-Mean"] == 1.0 and result.table["J-Decay"] == 0.0


def test_semi_supervised_object_scored_against_empty(tmp_path: Path) -> None:
    root, results = semi_dataset(tmp_path)
    write_labels(results / "seq", labels(4, {1: OBJECTS[1]}))
    rows = davis.evaluate(root, "val", "semi-supervised", results).objects
    assert [(o.j.mean, o.f.mean) for o in rows] == [(1.0, 1.0), (0.0, 0.0)]


def test_semi_supervised_refuses_extra_ids_and_missing_frames(tmp_path: Path) -> None:
    root, results = semi_dataset(tmp_path)
    write_labels(results / "seq", labels(4, {**OBJECTS, 3: (0, 1, 7, 8)}))
    with pytest.raises(InputError, match="object id 3, the first annotation frame has 2"):
        davis.evaluate(root, "val", "semi-supervised", results)
    (results / "seq" / "00002.png").unlink()
    with pytest.raises(InputError, match=r"00002\.png: prediction PNG is missing"):
        davis.evaluate(root, "val", "semi-supervised", results)


def unsup_dataset(tmp_path: Path, predicted: np.ndarray) -> tuple[Path, Path]:
    gt = labels(3, OBJECTS)
    gt[:, 0:4, 3] = davis.VOID  # a void band next to object 1
    root = write_davis(tmp_path / "DAVIS", "val", "Annotations_unsupervised", {"u": gt})
    write_labels(tmp_path / "results" / "u", predicted)
    return root, tmp_path / "results"


def test_unsupervised_matches_swapped_ids_and_ignores_void(tmp_path: Path) -> None:
    """Prediction id 1 is GT 2, id 2 is GT 1 (spilling into the void band), id 3 a distractor."""
    predicted = labels(3, {1: OBJECTS[2], 2: (0, 3, 0, 4), 3: (5, 6, 0, 2)})
    root, results = unsup_dataset(tmp_path, predicted)
    rows = davis.evaluate(root, "val", "unsupervised", results).objects
    assert [(o.name, o.pred_id, o.gt_id, o.j.mean, o.f.mean) for o in rows] == [
        ("u_1", 1, 2, 1.0, 1.0),
        ("u_2", 2, 1, 1.0, 1.0),
    ]


def test_unsupervised_pads_missing_proposals(tmp_path: Path) -> None:
    root, results = unsup_dataset(tmp_path, labels(3, {1: OBJECTS[2]}))
    rows = davis.evaluate(root, "val", "unsupervised", results).objects
    assert [(o.pred_id, o.gt_id, o.j.mean, o.f.mean) for o in rows] == [
        (1, 2, 1.0, 1.0),
        (2, 1, 0.0, 0.0),
    ]


def test_unsupervised_refuses_binary_masks(tmp_path: Path) -> None:
    root, results = unsup_dataset(tmp_path, labels(3, OBJECTS))
    write_gray(results / "u" / "00001.png", np.where(labels(1, OBJECTS)[0] > 0, 255, 0))
    with pytest.raises(InputError, match="object id 255, at most 20"):
        davis.evaluate(root, "val", "unsupervised", results)


def test_bad_annotations_and_split_lists(tmp_path: Path) -> None:
    root, results = unsup_dataset(tmp_path, labels(3, OBJECTS))
    annotation = root / "Annotations_unsupervised" / "480p" / "u" / "00001.png"
    write_gray(annotation, np.zeros((6, 8, 3), np.uint8))  # a colour PNG
    with pytest.raises(InputError, match=r"must be indexed .* found mode 'RGB'"):
        davis.evaluate(root, "val", "unsupervised", results)
    with pytest.raises(InputError, match=r"test\.txt: split list is missing \(found: val\)"):
        davis.evaluate(root, "test", "unsupervised", results)
    (root / "ImageSets" / "2017" / "val.txt").write_text("nothing\n")
    with pytest.raises(InputError, match="nothing: no annotation PNGs"):
        davis.evaluate(root, "val", "unsupervised", results)


def test_cli_on_indexed_pngs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _, results = semi_dataset(tmp_path)
    argv = [str(results), "--dataset", "davis", "--data", str(tmp_path), "--split", "val"]
    assert main([*argv, "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["global"]["J&F-Mean"] == 1.0 and summary["num_objects"] == 2
    assert summary["table"] == "per_object.csv" and (tmp_path / "out" / "per_object.csv").is_file()
    assert "DAVIS val semi-supervised: 2 objects" in capsys.readouterr().out


def test_cli_writes_a_nan_decay_as_null(tmp_path: Path) -> None:
    """256 evaluated frames (258 with the first and last): the official uint8 bins leave the last
    one empty, so the decays are NaN; summary.json writes null, which compares equal to NaN."""
    gt = labels(258, {1: OBJECTS[1]})
    write_davis(tmp_path / "DAVIS", "val", "Annotations", {"long": gt})
    write_labels(tmp_path / "results" / "long", gt)
    argv = [str(tmp_path / "results"), "--dataset", "davis", "--data", str(tmp_path)]
    assert main([*argv, "--split", "val", "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    table = json.loads((tmp_path / "out" / "summary.json").read_text())["global"]
    assert table["J-Decay"] is None and table["F-Decay"] is None
    assert close(None, table["J-Decay"], 0.0) and close(float("nan"), table["F-Decay"], 0.0)
    assert close(1.0, table["J-Mean"], 0.0) and not close(None, table["J-Mean"], 1.0)
    assert not close(0.0, table["J-Decay"], 1.0)


def test_cli_default_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --workers a small set runs in this process (rvos_eval.workers.pool_size)."""
    root, results = semi_dataset(tmp_path)
    tasks = [davis.SequenceTask("seq", root / "Annotations" / "480p" / "seq", results, "")]
    assert davis.mask_pixels(tasks) == 2 * 4 * SHAPE[0] * SHAPE[1]
    asked = []
    monkeypatch.setattr(davis, "pool_size", lambda pixels: asked.append(pixels) or 1)
    argv = [str(results), "--dataset", "davis", "--data", str(tmp_path), "--split", "val"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    assert asked == [davis.mask_pixels(tasks)]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["global"]["J&F-Mean"] == 1.0

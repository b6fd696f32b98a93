"""Ref-DAVIS17: merging per-expression masks into each annotator run, the mean of the four runs.

The dataset has one video of 3 frames (6x8) with objects 1 (top left) and 2 (bottom right) and a
void band next to object 1. Runs anno_0 and anno_2 predict both objects exactly (J = F = 1), runs
anno_1 and anno_3 predict nothing (J = F = 0 against non-empty objects): the mean is 0.5.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from eval_testlib import write_labels, write_refdavis

from rvos_core.data import Dataset
from rvos_core.runfolder import RunWriter, VideoResult
from rvos_eval import refdavis
from rvos_eval.cli import main

SHAPE, FRAMES = (6, 8), 3


def object_mask(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((FRAMES, *SHAPE), bool)
    mask[:, y0:y1, x0:x1] = True
    return mask


ONE, TWO = object_mask(0, 3, 0, 3), object_mask(3, 6, 4, 8)


@pytest.fixture
def dataset(tmp_path: Path) -> Dataset:
    gt = (ONE * 1 + TWO * 2).astype(np.uint8)
    gt[:, 0:4, 3] = 255
    return write_refdavis(tmp_path / "data", {"v": (2, gt)})


def test_merge_objects_by_hand() -> None:
    first, second = np.array([[1, 1, 0]], bool), np.array([[0, 1, 1]], bool)
    assert refdavis.merge_objects([first, second], None, (1, 3)).tolist() == [[1, 1, 2]]
    probs = [np.array([[200, 100, 0]], np.uint8), np.array([[250, 150, 90]], np.uint8)]
    assert refdavis.merge_objects([first, second], probs, (1, 3)).tolist() == [[1, 2, 2]]
    tie = [np.array([[9, 150, 9]], np.uint8), np.array([[9, 150, 9]], np.uint8)]
    assert refdavis.merge_objects([first, second], tie, (1, 3)).tolist() == [[1, 1, 2]]
    assert refdavis.merge_objects([], None, (1, 3)).tolist() == [[0, 0, 0]]


def write_run(root: Path, dataset: Dataset, per_run: list[tuple[np.ndarray, np.ndarray]]) -> Path:
    """Masks of objects (1, 2) for each annotator run a: expressions a and 4 + a."""
    masks = {}
    for a, (one, two) in enumerate(per_run):
        masks[str(a)], masks[str(4 + a)] = one, two
    meta = {"producer": "test", "value_domain": "binary", "has_scores": False, "has_probs": False}
    writer = RunWriter(root, dataset, meta)
    writer.write_video(dataset.video("v"), VideoResult(masks=masks))
    assert writer.finalize()
    return root


def half_right(dataset: Dataset, tmp_path: Path) -> Path:
    nothing = np.zeros_like(ONE)
    runs = [(ONE, TWO), (nothing, nothing), (ONE, TWO), (nothing, nothing)]
    return write_run(tmp_path / "run", dataset, runs)


def test_runs_and_their_mean(tmp_path: Path, dataset: Dataset) -> None:
    result = refdavis.evaluate(dataset, half_right(dataset, tmp_path), "run")
    tables = result.tables
    assert [tables[r]["J&F-Mean"] for r in refdavis.RUNS] == [1.0, 0.0, 1.0, 0.0]
    assert result.mean_over_runs == {"J&F-Mean": 0.5, "J-Mean": 0.5, "F-Mean": 0.5}
    first = [(o.run, o.name, o.pred_id, o.gt_id) for o in result.objects[:2]]
    assert first == [("anno_0", "v_1", 1, 1), ("anno_0", "v_2", 2, 2)]


def test_mask_pixels_for_the_default_workers(tmp_path: Path, dataset: Dataset) -> None:
    """3 frames of 6x8: the truth and the 4 annotator runs' predictions."""
    tasks = refdavis.tasks_for(dataset, tmp_path, "referformer")
    assert refdavis.mask_pixels(tasks) == 3 * 5 * SHAPE[0] * SHAPE[1]
    assert refdavis.mask_pixels([]) == 0


def test_cli_on_a_run_and_on_referformer_output(
    tmp_path: Path, dataset: Dataset, capsys: pytest.CaptureFixture
) -> None:
    referformer = tmp_path / "referformer"
    truth = (ONE * 1 + TWO * 2).astype(np.uint8)
    for a, name in enumerate(refdavis.RUNS):
        write_labels(referformer / name / "v", truth if a % 2 == 0 else truth * 0)
    common = ["--dataset", "refdavis", "--data", str(dataset.root.parent), "--split", "valid"]
    for source, layout in ((half_right(dataset, tmp_path), "run"), (referformer, "referformer")):
        out = tmp_path / f"out_{layout}"
        assert main([str(source), *common, "--out", str(out), "--workers", "1"]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["layout"] == layout and summary["J&F"] == 0.5
        assert summary["runs"]["anno_1"]["J-Mean"] == 0.0 and summary["num_objects_per_run"] == 2
    assert "anno_3" in capsys.readouterr().out
    (referformer / "anno_2").rename(tmp_path / "away")
    assert main([str(referformer), *common, "--out", str(tmp_path / "o"), "--workers", "1"]) == 2
    assert "anno_2: annotator run folder is missing" in capsys.readouterr().err


def test_overlaps_resolved_by_stored_probabilities(tmp_path: Path, dataset: Dataset) -> None:
    """Object 1's mask also covers object 2, where object 2 is more probable."""
    greedy = ONE | TWO
    probs = {"one": np.where(greedy, 140, 0).astype(np.uint8), "two": np.where(TWO, 250, 0)}
    meta = {"producer": "t", "value_domain": "probability", "has_scores": False, "has_probs": True}
    writer = RunWriter(tmp_path / "probs", dataset, meta)
    masks = {str(e): greedy if e < 4 else TWO for e in range(8)}
    stored = {str(e): (probs["one"] if e < 4 else probs["two"].astype(np.uint8)) for e in range(8)}
    writer.write_video(dataset.video("v"), VideoResult(masks=masks, probs=stored))
    assert writer.finalize()
    with_probs = refdavis.evaluate(dataset, tmp_path / "probs", "run", use_probs=True)
    assert with_probs.mean_over_runs["J&F-Mean"] == 1.0
    without = refdavis.evaluate(dataset, tmp_path / "probs", "run", use_probs=False)
    assert without.mean_over_runs["J&F-Mean"] < 1.0


def test_missing_ground_truth_and_wrong_size_prediction(
    tmp_path: Path, dataset: Dataset, capsys: pytest.CaptureFixture
) -> None:
    run = half_right(dataset, tmp_path)
    common = ["--dataset", "refdavis", "--data", str(dataset.root.parent), "--split", "valid"]
    argv = [str(run), *common, "--out", str(tmp_path / "out"), "--workers", "1"]
    png = run / "Annotations" / "v" / "4" / "00002.png"
    png.write_bytes((run / "Annotations" / "v" / "4" / "00001.png").read_bytes()[:40])
    assert main(argv) == 2
    assert f"{png}: " in capsys.readouterr().err
    annotation = dataset.root / "valid" / "Annotations" / "v" / "00001.png"
    annotation.unlink()
    assert main(argv) == 2
    assert f"{annotation}: annotation PNG is missing" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()

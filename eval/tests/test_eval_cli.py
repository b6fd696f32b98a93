"""The CLI end to end on a tiny MeViS-style dataset and run folders written with RunWriter.

Dataset (hand-made, 6x8 frames): video "va" (2 frames) with anno 1 (square A in frame 0, absent
in frame 1) and anno 2 (square B in frame 0, square C in frame 1); expression 0 = anno 1,
expression 1 = annos 1 + 2 (union). Video "vb" (1 frame) has expression 0 = anno 3, absent: a
no-target expression. The good run predicts: va/0 A then nothing (J = F = 1 in both frames),
va/1 nothing then C (frame 0: J = F = 0, frame 1: 1, so 0.5), vb/0 nothing (1). Final
J = F = J&F = (1 + 0.5 + 1) / 3.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from eval_testlib import write_gray, write_indexed, write_mevis, write_run

from rvos_core.data import Dataset
from rvos_core.errors import InputError
from rvos_core.parallel import map_videos
from rvos_core.runfolder import RUN_JSON
from rvos_eval import mevis
from rvos_eval.cli import main
from rvos_eval.readers import read_gray_mask

SHAPE = (6, 8)


def square(y: int, x: int, size: int = 2) -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    mask[y : y + size, x : x + size] = True
    return mask


A, B, C = square(1, 1), square(2, 2), square(3, 5)
EMPTY = np.zeros(SHAPE, bool)


@pytest.fixture
def dataset(tmp_path: Path) -> Dataset:
    videos = {
        "vb": {"expressions": {"0": {"exp": "nothing", "anno_id": [3]}}, "frames": ["00000"]},
        "va": {
            "expressions": {
                "0": {"exp": "a", "anno_id": [1]},
                "1": {"exp": "a and b", "anno_id": [1, 2]},
            },
            "frames": ["00000", "00001"],
        },
    }
    annos = {"1": [A, None], "2": [B, C], "3": [None]}
    return write_mevis(tmp_path / "data", videos, annos)


def good_masks() -> dict[str, dict[str, np.ndarray]]:
    return {
        "va": {"0": np.stack([A, EMPTY]), "1": np.stack([EMPTY, C])},
        "vb": {"0": EMPTY[None]},
    }


def run_cli(run: Path, dataset: Dataset, out: Path, *extra: str) -> int:
    data = dataset.root.parent
    argv = [str(run), "--dataset", "mevis", "--data", str(data), "--split", dataset.split]
    return main([*argv, "--out", str(out), "--workers", "1", *extra])


def test_good_run_by_hand(tmp_path: Path, dataset: Dataset, capsys: pytest.CaptureFixture) -> None:
    run = write_run(tmp_path / "run", dataset, good_masks())
    assert run_cli(run, dataset, tmp_path / "out") == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    expected = (1 + 0.5 + 1) / 3
    assert summary["J"] == pytest.approx(expected, abs=1e-15)
    assert summary["F"] == pytest.approx(expected, abs=1e-15)
    assert summary["J&F"] == pytest.approx(expected, abs=1e-15)
    assert summary["num_expressions"] == 3 and summary["missing_videos"] == []
    rows = list(csv.DictReader((tmp_path / "out" / "per_expression.csv").open()))
    assert [(r["video"], r["exp_id"], float(r["J"]), float(r["F"])) for r in rows] == [
        ("va", "0", 1.0, 1.0),
        ("va", "1", 0.5, 0.5),
        ("vb", "0", 1.0, 1.0),
    ]
    printed = capsys.readouterr().out
    assert "MeViS valid_u: 3 expressions" in printed and f"{expected:.4f}" in printed


def test_mask_pixels_for_the_default_workers(tmp_path: Path, dataset: Dataset) -> None:
    """5 (expression, frame) pairs of 6x8, truth and prediction; vb has no mask, va has."""
    tasks = mevis.build_tasks(dataset, dataset.extra["mask_dict"], tmp_path)
    assert [t.video for t in tasks] == ["va", "vb"]
    assert mevis.mask_pixels(tasks[::-1]) == 2 * 5 * SHAPE[0] * SHAPE[1]
    assert mevis.mask_pixels(tasks[1:]) == 0 and mevis.mask_pixels([]) == 0


def test_workers_give_the_same_report(tmp_path: Path, dataset: Dataset) -> None:
    run = write_run(tmp_path / "run", dataset, good_masks())
    assert run_cli(run, dataset, tmp_path / "one") == 0
    assert run_cli(run, dataset, tmp_path / "two", "--workers", "2") == 0
    for name in ("summary.json", "per_expression.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_plain_folder_missing_video_and_grey_values(
    tmp_path: Path, dataset: Dataset, capsys: pytest.CaptureFixture
) -> None:
    """Official layout without run.json: any non-zero grey is foreground; vb missing scores 0."""
    plain = tmp_path / "pred"
    for exp_id, masks in good_masks()["va"].items():
        for t, mask in enumerate(masks):
            write_gray(plain / "va" / exp_id / f"{t:05d}.png", mask * np.uint8(17))
    assert run_cli(plain, dataset, tmp_path / "out") == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["J"] == pytest.approx((1 + 0.5 + 0) / 3, abs=1e-15)
    assert summary["missing_videos"] == ["vb"]
    assert "vb" in capsys.readouterr().out


def _expect_error(run: Path, dataset: Dataset, out: Path, capsys, needle: str, *extra: str) -> None:
    assert run_cli(run, dataset, out, *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err, err
    assert not out.exists()


def test_bad_prediction_pngs(tmp_path: Path, dataset: Dataset, capsys) -> None:
    run = write_run(tmp_path / "run", dataset, good_masks())
    png = run / "Annotations" / "va" / "1" / "00001.png"
    original = png.read_bytes()
    png.write_bytes(b"not a png at all")
    _expect_error(run, dataset, tmp_path / "out", capsys, f"{png}: corrupt or unreadable")
    write_gray(png, np.zeros((3, 3), np.uint8))
    _expect_error(run, dataset, tmp_path / "out", capsys, f"{png}: image is 3x3, expected 6x8")
    png.unlink()
    _expect_error(run, dataset, tmp_path / "out", capsys, f"{png}: prediction PNG is missing")
    png.write_bytes(original)
    assert run_cli(run, dataset, tmp_path / "out") == 0


def test_missing_ground_truth(tmp_path: Path, dataset: Dataset, capsys) -> None:
    run = write_run(tmp_path / "run", dataset, good_masks())
    mask_dict = dataset.extra["mask_dict"]
    entries = json.loads(mask_dict.read_text())
    del entries["2"]
    mask_dict.write_text(json.dumps(entries))
    _expect_error(run, dataset, tmp_path / "out", capsys, "anno_id 2 (video va, expression 1)")
    mask_dict.unlink()
    _expect_error(run, dataset, tmp_path / "out", capsys, f"{mask_dict}: file is missing")


def test_refuses_incomplete_or_foreign_runs(tmp_path: Path, dataset: Dataset, capsys) -> None:
    run = write_run(tmp_path / "run", dataset, good_masks())
    meta = json.loads((run / RUN_JSON).read_text())
    (run / RUN_JSON).write_text(
        json.dumps({**meta, "dataset": {"name": "mevis", "split": "valid"}})
    )
    _expect_error(run, dataset, tmp_path / "out", capsys, "run is for mevis/valid")
    (run / RUN_JSON).unlink()
    _expect_error(run, dataset, tmp_path / "out", capsys, "incomplete")
    _expect_error(tmp_path / "nowhere", dataset, tmp_path / "out", capsys, "does not exist")
    (tmp_path / "empty").mkdir()
    _expect_error(
        tmp_path / "empty", dataset, tmp_path / "out", capsys, "for no video of the split"
    )
    _expect_error(run, dataset, tmp_path / "out", capsys, "--workers", "--workers", "0")


def test_worker_errors_name_the_file(tmp_path: Path) -> None:
    good, missing = tmp_path / "good.png", tmp_path / "missing.png"
    write_gray(good, np.zeros(SHAPE, np.uint8))
    masks = map_videos(read_gray_mask, [good, good], workers=2, desc="test")
    assert [m.shape for m in masks] == [SHAPE, SHAPE]
    with pytest.raises(InputError, match=f"{missing}: prediction PNG is missing"):
        map_videos(read_gray_mask, [good, missing, good], workers=2, desc="test")


D = square(4, 0)


def write_refytvos(data: Path, split: str, annotated: bool) -> Dataset:
    """Ref-YouTube-VOS ``split`` of video "va" (objects 1 = D then absent, 2 = B then C), with
    its palette Annotations when ``annotated``."""
    from rvos_core.data import open_dataset

    root = data / "refer_youtube_vos"
    meta = root / "meta_expressions" / split / "meta_expressions.json"
    meta.parent.mkdir(parents=True)
    expressions = {"0": {"exp": "a", "obj_id": "1"}, "1": {"exp": "b", "obj_id": "2"}}
    frames = ["00000", "00005"]
    video = {"expressions": expressions, "frames": frames}
    meta.write_text(json.dumps({"videos": {"va": video}}))
    for name in frames:
        write_gray(root / split / "JPEGImages" / "va" / f"{name}.jpg", np.zeros(SHAPE, np.uint8))
    if annotated:
        for name, one, two in zip(frames, (D, EMPTY), (B, C), strict=True):
            labels = np.where(two, 2, np.where(one, 1, 0)).astype(np.uint8)
            write_indexed(root / split / "Annotations" / "va" / f"{name}.png", labels)
    return open_dataset("refytvos", data, split)


def test_refytvos_splits_with_annotations_score_per_expression(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    dataset = write_refytvos(tmp_path / "data", "train", annotated=True)
    masks = {"va": {"0": np.stack([D, D]), "1": np.stack([B, EMPTY])}}
    run = write_run(tmp_path / "run", dataset, masks)
    argv = [str(run), "--dataset", "refytvos", "--data", str(tmp_path / "data"), "--split"]
    assert main([*argv, "train", "--out", str(tmp_path / "out"), "--workers", "1"]) == 0
    rows = list(csv.DictReader((tmp_path / "out" / "per_expression.csv").open()))
    # "0": frame 0 exact, frame 1 a mask where nothing is (0, 0); "1": exact, then C missed
    assert [(r["exp_id"], float(r["J"]), float(r["F"])) for r in rows] == [
        ("0", 0.5, 0.5),
        ("1", 0.5, 0.5),
    ]
    assert "Ref-YouTube-VOS train: 2 expressions" in capsys.readouterr().out
    write_refytvos(tmp_path / "bare", "train", annotated=False)
    bare = [str(run), "--dataset", "refytvos", "--data", str(tmp_path / "bare"), "--split"]
    assert main([*bare, "train", "--out", str(tmp_path / "out2")]) == 2
    assert "scored here only on splits with annotations" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()


def test_the_largest_target_baseline_gives_every_expression_the_biggest_target(
    tmp_path: Path,
) -> None:
    from rvos_eval.baselines import write_largest_target

    dataset = write_refytvos(tmp_path / "data", "train", annotated=True)
    folder = write_largest_target(dataset, tmp_path / "baseline")
    for exp_id in ("0", "1"):  # object 2 (B, then C: 8 pixels) outweighs object 1 (D: 4)
        assert np.array_equal(read_gray_mask(folder / "va" / exp_id / "00000.png"), B)
        assert np.array_equal(read_gray_mask(folder / "va" / exp_id / "00005.png"), C)
    result = mevis.evaluate_tasks(mevis.dataset_tasks(dataset, folder), folder)
    assert [(s.exp_id, s.j) for s in result.expressions] == [("0", 0.0), ("1", 1.0)]

"""Parity with the official code on every case of $RVOS_PARITY_DIR/eval (see its README).

Per-frame values, counts, statistics and means are exactly reproducible (1e-12); NaN must stay NaN.
Everything is discovered from the fixture files: frames/index.json, stats/cases.json and the
folders of sequences/ (kind from expected.json).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from eval_testlib import close

from rvos_core.data.base import build_video, load_json, parse_meta_videos
from rvos_core.testing import parity_dir
from rvos_eval import davis, mevis
from rvos_eval.cli import main
from rvos_eval.metrics import boundary_radius, frame_counts
from rvos_eval.stats import MEASURES, statistics

pytestmark = pytest.mark.parity
TOL = 1e-12
AUX = (
    "intersection",
    "union",
    "n_pred_boundary",
    "n_gt_boundary",
    "pred_boundary_matched",
    "gt_boundary_matched",
)


def _fixture() -> Path:
    return parity_dir("eval")


def _sequences(kind: str) -> list[tuple[Path, dict[str, Any]]]:
    """(folder, expected.json) of every sequences/ case of ``kind`` (mevis or a DAVIS task)."""
    found = []
    for folder in sorted((_fixture() / "sequences").iterdir()):
        expected = json.loads((folder / "expected.json").read_text())
        is_mevis = expected["format"].startswith("rvos-eval-mevis")
        if (kind == "mevis") == is_mevis and (is_mevis or expected["task"] == kind):
            found.append((folder, expected))
    return found


def test_every_sequence_case_has_a_known_kind() -> None:
    kinds = ("mevis", *davis.TASKS)
    found = sum(len(_sequences(kind)) for kind in kinds)
    assert found == len(list((_fixture() / "sequences").iterdir())) > 0


def test_frame_cases_bit_for_bit() -> None:
    folder = _fixture() / "frames"
    cases = json.loads((folder / "index.json").read_text())["cases"]
    assert cases
    wrong = []
    for case in cases:
        data = np.load(folder / case["file"])
        void = data["void"] if "void" in data.files else None
        bound_th = float(data["bound_th"])
        counts = frame_counts(data["gt"], data["pred"], void, bound_th)
        swapped = frame_counts(data["pred"], data["gt"], void, bound_th)
        aux = case["aux"]
        ok = (
            close(case["J"], counts.j, TOL)
            and close(case["F"], counts.f, TOL)
            and close(case["J"], swapped.j, TOL)
            and close(case["F"], swapped.f, TOL)
            and close(float(data["J"]), counts.j, TOL)
            and close(float(data["F"]), counts.f, TOL)
            and boundary_radius(data["gt"].shape, bound_th) == aux["radius"]
            and all(getattr(counts, key) == aux[key] for key in AUX)
        )
        if not ok:
            wrong.append((case["name"], counts))
    assert not wrong


def test_statistics_cases() -> None:
    cases = json.loads((_fixture() / "stats" / "cases.json").read_text())["cases"]
    assert cases
    for case in cases:
        stats = statistics(np.array(case["values"], dtype=np.float64))
        assert close(case["M"], stats.mean, TOL), case["name"]
        assert close(case["R"], stats.recall, TOL), case["name"]
        assert close(case["D"], stats.decay, TOL), case["name"]


def _videos(folder: Path) -> list:
    meta = folder / "meta_expressions.json"
    entries = parse_meta_videos(load_json(meta), meta)
    return [build_video(v, entries[v], folder / "JPEGImages" / v, meta) for v in entries]


def _check_expression(score: mevis.ExpressionScore, expected: dict[str, Any]) -> None:
    assert close(expected["J"], score.j, TOL) and close(expected["F"], score.f, TOL)
    if expected["J_per_frame"] is None:
        assert score.missing
        return
    for key, values in (("J_per_frame", score.j_per_frame), ("F_per_frame", score.f_per_frame)):
        assert values is not None and len(values) == len(expected[key])
        assert all(close(e, g, TOL) for e, g in zip(expected[key], values, strict=True))


@pytest.mark.parametrize("workers", [1, 2])
def test_mevis_sequences(workers: int) -> None:
    cases = _sequences("mevis")
    assert cases
    for folder, expected in cases:
        result = mevis.evaluate(
            _videos(folder), folder / "mask_dict.json", folder / "pred", workers=workers
        )
        assert len(result.expressions) == expected["num_expressions"]
        assert {f"{e.video}_{e.exp_id}" for e in result.expressions} == set(
            expected["per_expression"]
        )
        for score in result.expressions:
            _check_expression(score, expected["per_expression"][f"{score.video}_{score.exp_id}"])
        assert close(expected["J"], result.j, TOL) and close(expected["F"], result.f, TOL)
        assert close(expected["J&F"], result.jf, TOL)


def test_mevis_sequences_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for folder, expected in _sequences("mevis"):
        data = tmp_path / folder.name
        split = data / "mevis" / "valid_u"
        split.mkdir(parents=True)
        for name in ("meta_expressions.json", "mask_dict.json"):
            shutil.copy(folder / name, split / name)
        out = tmp_path / f"out_{folder.name}"
        argv = [str(folder / "pred"), "--dataset", "mevis", "--data", str(data)]
        assert main([*argv, "--split", "valid_u", "--out", str(out), "--workers", "1"]) == 0
        summary = json.loads((out / "summary.json").read_text())
        for key in ("J", "F", "J&F"):
            assert close(expected[key], summary[key], TOL)
        assert summary["num_expressions"] == expected["num_expressions"]
    capsys.readouterr()


def _split(root: Path) -> str:
    lists = sorted((root / "ImageSets" / "2017").glob("*.txt"))
    assert len(lists) == 1, "one split list per parity DAVIS folder"
    return lists[0].stem


def _check_object(row: davis.ObjectScore, expected: dict[str, Any]) -> None:
    assert (row.name, row.sequence) == (expected["name"], expected["sequence"])
    assert list(row.frames) == expected["frames"]
    assert len(row.frames) == expected["num_frames_evaluated"]
    for key, values in (("J_per_frame", row.j_per_frame), ("F_per_frame", row.f_per_frame)):
        assert all(close(e, g, TOL) for e, g in zip(expected[key], values, strict=True))
    got = {
        "J-Mean": row.j.mean,
        "J-Recall": row.j.recall,
        "J-Decay": row.j.decay,
        "F-Mean": row.f.mean,
        "F-Recall": row.f.recall,
        "F-Decay": row.f.decay,
    }
    assert all(close(expected[key], value, TOL) for key, value in got.items()), row.name
    if "matched_pred_id" in expected:
        assert (row.pred_id, row.gt_id) == (expected["matched_pred_id"], expected["matched_gt_id"])


def _check_davis(result: davis.DavisResult, expected: dict[str, Any]) -> None:
    assert len(result.objects) == len(expected["per_object"])
    for row, exp in zip(result.objects, expected["per_object"], strict=True):
        _check_object(row, exp)
    table = result.table
    assert all(close(expected["global"][m], table[m], TOL) for m in MEASURES)


def test_davis_semi_supervised_sequences() -> None:
    cases = _sequences("semi-supervised")
    assert cases
    for folder, expected in cases:
        root = folder / "DAVIS"
        _check_davis(
            davis.evaluate(root, _split(root), "semi-supervised", folder / "results"), expected
        )


def _score_matrix(root: Path, sequence: str, results: Path) -> np.ndarray:
    gt = davis.read_ground_truth(davis.annotation_root(root, "unsupervised") / sequence)
    pred = davis.read_labels(results / sequence, gt.frames, gt.labels.shape[1:], "prediction")
    j, f = davis.unsupervised_pairs(gt, pred, results)
    return (j.mean(axis=2) + f.mean(axis=2)) / 2


def test_davis_unsupervised_runs_and_their_mean() -> None:
    cases = _sequences("unsupervised")
    assert cases
    for folder, expected in cases:
        root = folder / "DAVIS"
        tables = {}
        for run, run_expected in expected["runs"].items():
            result = davis.evaluate(root, _split(root), "unsupervised", folder / "results" / run)
            _check_davis(result, run_expected)
            tables[run] = result.table
            for row in run_expected["per_object"]:
                if "_sequence_score_matrix_pred_x_gt" in row:
                    matrix = _score_matrix(root, row["sequence"], folder / "results" / run)
                    wanted = np.array(row["_sequence_score_matrix_pred_x_gt"])
                    assert matrix.shape == wanted.shape
                    assert np.abs(matrix - wanted).max() <= TOL
        for key, value in expected["mean_over_runs"].items():
            assert close(value, float(np.mean([t[key] for t in tables.values()])), TOL)


@pytest.mark.parametrize("task", davis.TASKS)
def test_davis_sequences_through_the_cli(
    task: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    for folder, expected in _sequences(task):
        runs = expected.get("runs", {"": expected})
        for run, run_expected in runs.items():
            out = tmp_path / f"{folder.name}_{run}"
            argv = [str(folder / "results" / run), "--dataset", "davis", "--task", task]
            argv += ["--data", str(folder), "--split", _split(folder / "DAVIS"), "--out", str(out)]
            assert main([*argv, "--workers", "1"]) == 0
            summary = json.loads((out / "summary.json").read_text())
            assert all(
                close(run_expected["global"][m], summary["global"][m], TOL) for m in MEASURES
            )
    capsys.readouterr()

"""The HTML report of a set of runs: what it holds, how it ranks, and how it refuses bad input."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from report_testlib import NODES, report_data, write_run

from rvos_core.atomic import write_json
from rvos_core.data import open_dataset
from rvos_core.synthetic import VideoSpec, object_masks, rle_encode, write_mevis
from rvos_report import render
from rvos_report.cli import main
from rvos_report.mp4 import decode_video
from rvos_report.video import disputed_share, shown_frames


def node_table(out: Path) -> dict[str, list[str]]:
    """node -> the cells of its row in the index's J&F table."""
    html = (out / "index.html").read_text()
    table = re.search(r'<table id="nodes".*?</table>', html).group(0)
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table)]
    return {cells[0]: cells[1:] for cells in rows if cells}


def test_the_table_scores_each_node_against_the_truth(report: Path) -> None:
    table = node_table(report)
    assert list(table) == NODES
    assert table["exact"][-3:] == ["1.0000", "1.0000", "1.0000"]  # J, F, J&F
    assert table["empty"][-1] == "0.0000"
    assert 0 < float(table["shifted"][-1]) < 1
    assert table["vote"][0] == "vote" and table["exact"][0] == "model"


def test_expressions_are_listed_worst_first(report: Path, world) -> None:
    data = report_data(report)
    assert [n["name"] for n in data["nodes"]] == NODES
    assert len(data["rows"]) == sum(len(v.expressions) for v in world.dataset)
    votes = [row["jf"][-1] for row in data["rows"]]
    assert votes == sorted(votes)
    for row in data["rows"]:
        assert row["jf"][0] == 1.0 and (report / row["page"]).is_file()
        assert (report / row["thumb"]).is_file()


def test_an_expression_page_shows_frames_key_frames_curves_and_the_vote(report: Path) -> None:
    page = (report / "e" / "vid0" / "1.html").read_text()
    assert "the red blob, take 2" in page
    images = re.findall(r'<img loading="lazy" src="\.\./\.\./(img/vid0/1/\d+\.jpg)"', page)
    assert images == [f"img/vid0/1/{t}.jpg" for t in (0, 2, 3, 5)]  # 3 spread + the key frame 3
    assert all((report / image).is_file() for image in images)
    assert "key frame of exact, shifted, empty" in page
    assert page.count('<svg class="curve"') == 2  # J&F per frame, disputed pixels per vote
    assert "vote vote: disputed" in page


def test_overlay_videos_of_the_worst_and_the_chosen_expressions(report: Path) -> None:
    worst = report_data(report)["rows"][0]
    videos = sorted(p.relative_to(report).as_posix() for p in report.rglob("*.mp4"))
    assert videos == sorted({f"mp4/{worst['video']}/{worst['exp']}.mp4", "mp4/vid1/2.mp4"})
    frames = list(decode_video(report / "mp4" / "vid1" / "2.mp4"))
    # one tile per node, the truth and the vote's view: 240 x 180 each, 4 pixels apart
    assert len(frames) == 6 and frames[0].rgb.shape == (180, 6 * 240 + 5 * 4, 3)
    assert (
        '<video controls loop src="../../mp4/vid1/2.mp4">' in (report / "e/vid1/2.html").read_text()
    )


def test_the_default_nodes_are_the_submission_and_its_inputs(world, tmp_path: Path) -> None:
    assert main(world.args(tmp_path / "r", "--videos", "0")) == 0
    data = report_data(tmp_path / "r")
    assert [n["name"] for n in data["nodes"]] == NODES
    assert all(row["jf"] is None for row in data["rows"])  # no truth: ranked by disagreement
    agreement = [row["agreement"] for row in data["rows"]]
    assert agreement == sorted(agreement)
    assert "J&amp;F</th>" not in (tmp_path / "r" / "index.html").read_text()


def test_official_evaluations_get_a_column_per_benchmark(world, tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(world.work, work)
    summary = {"dataset": "mevis", "split": "valid_u", "J": 0.5, "F": 0.7, "J&F": 0.6}
    write_json(work / "shifted" / "eval" / "summary.json", summary)
    args = world.args(tmp_path / "r", "--videos", "0")
    args[args.index("--work") + 1] = str(work)
    assert main(["exact", "shifted", *args]) == 0
    table = node_table(tmp_path / "r")
    assert "mevis valid_u J&amp;F" in (tmp_path / "r" / "index.html").read_text()
    assert table["shifted"][-1] == "0.6000" and table["exact"][-1] == "-"


def test_mevis_ground_truth_comes_from_its_mask_dict(world, tmp_path: Path) -> None:
    spec = VideoSpec("m0", expressions=3, frames=4, size=(48, 64))
    write_mevis(tmp_path / "data", "valid_u", [spec])
    objects = object_masks(spec)  # expression e describes object e // 2 (anno_id e // 2)
    rles = {str(k): [rle_encode(objects[k, t]) for t in range(spec.frames)] for k in range(2)}
    (tmp_path / "data" / "mevis" / "valid_u" / "mask_dict.json").write_text(json.dumps(rles))
    dataset = open_dataset("mevis", tmp_path / "data", "valid_u")
    for node in ("exact", "empty"):
        write_run(tmp_path / "work" / node, dataset, node, [spec])
    args = ["exact", "empty", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "r")]
    args += ["--data", str(tmp_path / "data"), "--dataset", "mevis", "--split", "valid_u"]
    assert main([*args, "--recipe", str(world.recipe), "--videos", "0", "--workers", "1"]) == 0
    table = node_table(tmp_path / "r")
    assert table["exact"][-1] == "1.0000" and table["empty"][-1] == "0.0000"


@pytest.mark.parametrize(
    ("nodes", "extra", "named"),
    [
        (["exact", "nothere"], [], "work/nothere: run folder does not exist"),
        (["exact", "half"], [], "work/half: run folder is incomplete (no run.json)"),
        (
            ["exact"],
            ["--truth", "TRUTH_WITHOUT_VID1"],
            "vid1: ground truth of this video is missing",
        ),
        (["exact"], ["--expression", "vid0/9"], "--expression vid0/9: no such expression"),
    ],
)
def test_bad_input_is_one_error_naming_the_file_and_no_output(
    world, tmp_path: Path, capsys: pytest.CaptureFixture, nodes, extra, named
) -> None:
    work = tmp_path / "work"
    shutil.copytree(world.work, work)
    (work / "half" / "Annotations").mkdir(parents=True)
    partial_truth = tmp_path / "truth"
    shutil.copytree(world.truth / "vid0", partial_truth / "vid0")
    extra = [str(partial_truth) if e == "TRUTH_WITHOUT_VID1" else e for e in extra]
    args = world.args(tmp_path / "r", *extra)
    args[args.index("--work") + 1] = str(work)
    assert main([*nodes, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and named in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["truth", "work"]  # nothing staged left


def test_a_report_replaces_the_previous_one_whole(world, tmp_path: Path) -> None:
    out = tmp_path / "r"
    (out / "e" / "stale").mkdir(parents=True)
    assert main(["exact", *world.args(out, "--videos", "0")]) == 0
    assert not (out / "e" / "stale").exists() and (out / "index.html").is_file()


def test_the_vote_view_colours_disputed_pixels_by_the_outcome() -> None:
    frame = np.full((1, 4, 3), 100, np.uint8)
    votes = np.array([[0, 1, 2, 3]], np.uint8)  # of 3 runs
    decision = np.array([[False, False, True, True]])
    view = render.vote_view(frame, votes, 3, decision)
    assert tuple(view[0, 0]) == (40, 40, 40)  # no run: the dimmed grey frame
    assert view[0, 1, 0] > view[0, 1, 1]  # held by one run, dropped: red
    assert view[0, 2, 1] > view[0, 2, 0]  # held by two, kept: green
    assert tuple(view[0, 3]) == (220, 220, 220)  # every run: white


def test_disputed_share_and_shown_frames() -> None:
    votes = np.array([[[0, 1, 3, 3]], [[0, 0, 0, 0]]], np.uint8)
    assert disputed_share(votes, 3) == (1 / 3, 0.0)
    assert shown_frames(10, 3, (7, None)) == (0, 4, 7, 9)
    assert shown_frames(2, 8, ()) == (0, 1)

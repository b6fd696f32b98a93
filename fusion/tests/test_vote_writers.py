"""Votes writing one run folder at once, killed votes, and what a vote refuses to write."""

from __future__ import annotations

import json
import os
import signal
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from rvos_core.data import Dataset, open_dataset
from rvos_core.runfolder import Run, RunWriter, VideoResult
from rvos_core.synthetic import VideoSpec, write_refytvos
from rvos_core.testing import run_forked, tree_digest
from rvos_fusion.cli import main
from rvos_fusion.submission import write_submission
from rvos_fusion.vote import VoteConfig, run_vote

ROUND1 = VoteConfig(min_votes=3, grouping="pairs", unpaired="reference", key_frames_from=0)
# Enough races to catch a writer that finalises under another (the unlocked writer lost masks
# in about one race of three), in a few seconds.
RACES = 12


@pytest.fixture
def many(tmp_path: Path) -> Dataset:
    """16 videos of 3 expressions (a pair and an unpaired one), 4 frames of 12x16 pixels."""
    specs = [VideoSpec(f"v{i:02d}", 3, 4, (12, 16)) for i in range(16)]
    write_refytvos(tmp_path / "data", "valid", specs, frames=False)
    return open_dataset("refytvos", tmp_path / "data", "valid")


def random_run(root: Path, dataset: Dataset, seed: int) -> Run:
    """A complete run of random masks and scores."""
    meta = {"producer": "test", "value_domain": "binary", "has_scores": True, "has_probs": False}
    writer = RunWriter(root, dataset, meta)
    rng = np.random.default_rng(seed)
    for video in dataset:
        shape = (len(video.frames), 12, 16)
        masks = {e: rng.random(shape) > 0.5 for e in video.exp_ids}
        scores = {e: rng.random(len(video.frames)).tolist() for e in video.exp_ids}
        writer.write_video(video, VideoResult(masks=masks, scores=scores))
    assert writer.finalize()
    return Run(root)


@pytest.fixture
def inputs(tmp_path: Path, many: Dataset) -> list[Run]:
    return [random_run(tmp_path / f"in{i}", many, seed=i) for i in range(3)]


@pytest.fixture
def expected(tmp_path: Path, many: Dataset, inputs: list[Run]) -> str:
    """The digest of the vote written by one process, uninterrupted."""
    assert run_vote(inputs, many, ROUND1, tmp_path / "single")
    return tree_digest(tmp_path / "single")


def _vote(inputs: list[Run], dataset: Dataset, out: Path, shard: tuple[int, int]) -> None:
    run_vote(inputs, dataset, ROUND1, out, shard)


@pytest.mark.parametrize("shards", [[(0, 1), (0, 1)], [(0, 2), (1, 2)]], ids=["same", "disjoint"])
def test_two_votes_into_one_folder_give_the_single_run(
    tmp_path: Path, many: Dataset, inputs: list[Run], expected: str, shards: list
) -> None:
    for race in range(RACES):
        out = tmp_path / f"race{race}"
        codes = run_forked(*(partial(_vote, inputs, many, out, shard) for shard in shards))
        assert codes == [0, 0], race
        assert tree_digest(out) == expected, race


def test_a_killed_vote_resumes_to_the_same_bytes(
    tmp_path: Path, many: Dataset, inputs: list[Run], expected: str
) -> None:
    """kill -9 at spread-out moments: nothing looks complete before the end, and the rerun
    gives the bytes of the uninterrupted vote (no temporaries, markers or locks left)."""
    for k, delay in enumerate(np.linspace(0.0, 0.25, 8)):
        out = tmp_path / f"killed{k}"
        child = os.fork()
        if child == 0:  # pragma: no cover (the child)
            try:
                _vote(inputs, many, out, (0, 1))
            finally:
                os._exit(0)
        time.sleep(float(delay))
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        if (out / "run.json").is_file():
            Run(out)  # complete: it must be the whole run
        assert run_vote(inputs, many, ROUND1, out)
        assert tree_digest(out) == expected, delay


def fusion(capsys: pytest.CaptureFixture, dataset: Dataset, *argv: object) -> tuple[int, str]:
    """``python -m rvos_fusion ARGV`` on ``dataset``: (exit status, stderr)."""
    data = ["--data", str(dataset.root.parent), "--split", dataset.split]
    code = main([*map(str, argv), *data])
    return code, capsys.readouterr().err


def refused(result: tuple[int, str], *names: object) -> str:
    """Exit status 2 with one line ``error: ...`` naming every one of ``names``."""
    code, err = result
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    for name in names:
        assert str(name) in err, (name, err)
    return err


def round1(inputs: list[Run], out: Path, *extra: object) -> list[object]:
    return ["vote", *(r.root for r in inputs), "--out", out, "--min-votes", 3, "--unpaired",
            "reference", "--key-frames-from", 0, *extra]  # fmt: skip


def test_a_finished_vote_asked_with_other_options_is_refused(
    tmp_path: Path, many: Dataset, inputs: list[Run], capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    written = f"{out}: {len(many)} videos written; run complete\n"
    assert fusion(capsys, many, *round1(inputs, out)) == (0, written)
    before = tree_digest(out)
    nothing = f"{out} is complete (run.json); nothing to do\n"
    assert fusion(capsys, many, *round1(inputs, out)) == (0, nothing)  # the same settings
    err = refused(
        fusion(capsys, many, *round1(inputs, out, "--weights", "2,1,1")),
        out,
        "complete with other settings",
        "config.weights = null in run.json, [2.0, 1.0, 1.0] in this command",
    )
    assert "Traceback" not in err
    assert tree_digest(out) == before


def test_an_output_that_is_an_input_run_is_refused(
    tmp_path: Path, many: Dataset, inputs: list[Run], capsys: pytest.CaptureFixture
) -> None:
    before = tree_digest(inputs[1].root)
    for out in (tmp_path / "x" / ".." / "in1", inputs[1].root / "Annotations"):
        refused(fusion(capsys, many, *round1(inputs, out)), out, "input run", inputs[1].root)
    assert tree_digest(inputs[1].root) == before


def test_an_import_into_its_png_folder_is_refused(
    tmp_path: Path, many: Dataset, inputs: list[Run], capsys: pytest.CaptureFixture
) -> None:
    tree = inputs[0].root / "Annotations"
    out = tree / "imported"
    refused(fusion(capsys, many, "import-png", tree, "--out", out), out, "input run", tree)
    assert not out.exists()


def test_an_empty_split_is_refused(
    tmp_path: Path, many: Dataset, inputs: list[Run], capsys: pytest.CaptureFixture
) -> None:
    many.meta_path.write_text(json.dumps({"videos": {}}))
    message = "refytvos/valid lists no videos"
    refused(fusion(capsys, many, *round1(inputs, tmp_path / "out")), many.meta_path, message)
    zipped = tmp_path / "s.zip"
    refused(fusion(capsys, many, "submission", inputs[0].root, "--out", zipped), message)
    assert not (tmp_path / "out").exists() and not zipped.exists()


def test_input_runs_of_a_changed_meta_are_refused(
    tmp_path: Path, many: Dataset, inputs: list[Run], capsys: pytest.CaptureFixture
) -> None:
    meta = json.loads(many.meta_path.read_text())
    del meta["videos"]["v07"]
    many.meta_path.write_text(json.dumps(meta))
    out = tmp_path / "out"
    run_json = inputs[0].root / "run.json"
    refused(fusion(capsys, many, *round1(inputs, out)), run_json, many.meta_path, "has changed")
    assert not out.exists()


def test_a_key_frame_outside_its_video_is_refused(
    tmp_path: Path, many: Dataset, inputs: list[Run], capsys: pytest.CaptureFixture
) -> None:
    path = inputs[0].root / "key_frame.json"
    table = json.loads(path.read_text())
    table["v03"]["1"]["index_info"]["class_index"] = 9
    path.write_text(json.dumps(table))
    out = tmp_path / "out"
    refused(fusion(capsys, many, *round1(inputs, out)), path, "v03/1 index 9 is outside 0..3")
    assert not out.exists()


def _submission(run: Run, dataset: Dataset, out: Path) -> None:
    write_submission(run, dataset, out)


def test_a_killed_submission_leaves_no_temporaries_after_the_rerun(
    tmp_path: Path, many: Dataset, inputs: list[Run], capsys: pytest.CaptureFixture
) -> None:
    write_submission(inputs[0], many, tmp_path / "single.zip")
    folder = tmp_path / "zips"
    folder.mkdir()
    (folder / ".s.zip.k3j_x9q2.tmp").write_bytes(b"an earlier version's temporary")
    for delay in np.linspace(0.0, 0.1, 5):
        child = os.fork()
        if child == 0:  # pragma: no cover (the child)
            try:
                write_submission(inputs[0], many, folder / "s.zip")
            finally:
                os._exit(0)
        time.sleep(float(delay))
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    assert fusion(capsys, many, "submission", inputs[0].root, "--out", folder / "s.zip")[0] == 0
    assert [p.name for p in folder.iterdir()] == ["s.zip"]
    assert (folder / "s.zip").read_bytes() == (tmp_path / "single.zip").read_bytes()

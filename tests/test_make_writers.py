"""End to end: `make vote` refuses to overwrite what it must not (a finished node made with other
options, one of its own input nodes), with one line naming both and nothing changed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_make_tools import make

from rvos_core.data import open_dataset
from rvos_core.runfolder import RunWriter, VideoResult
from rvos_core.synthetic import VideoSpec, write_refytvos
from rvos_core.testing import tree_digest

SPEC = VideoSpec("v0000001", expressions=3, frames=3, size=(8, 12))


@pytest.fixture
def common(tmp_path: Path) -> list[str]:
    """Make variables of a split of one video with two complete nodes, 'a' and 'b'."""
    write_refytvos(tmp_path / "data", "valid", [SPEC], frames=False)
    dataset = open_dataset("refytvos", tmp_path / "data", "valid")
    video = dataset.video(SPEC.id)
    rng = np.random.default_rng(0)
    for node in "ab":
        meta = {"producer": "test", "value_domain": "binary"}
        writer = RunWriter(tmp_path / "work" / "valid" / node, dataset, meta)
        masks = {e: rng.random((3, 8, 12)) > 0.5 for e in video.exp_ids}
        writer.write_video(video, VideoResult(masks=masks))
        assert writer.finalize()
    return [f"DATA={tmp_path / 'data'}", f"WORK={tmp_path / 'work'}", "SPLIT=valid"]


def error_line(result) -> str:
    """The one ``error: ...`` line of a failed command (no traceback)."""
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_make_vote_refuses_a_finished_node_with_other_options(
    tmp_path: Path, common: list[str]
) -> None:
    rule = "VOTE_OPTS=--min-votes 2 --unpaired 1"
    assert make("vote", "OUT=v", "RUNS=a b", rule, *common).returncode == 0
    node = tmp_path / "work" / "valid" / "v"
    before = tree_digest(node)
    assert make("vote", "OUT=v", "RUNS=a b", rule, *common).returncode == 0
    line = error_line(
        make("vote", "OUT=v", "RUNS=a b", "VOTE_OPTS=--min-votes 3 --unpaired 1", *common)
    )
    assert "complete with other settings" in line
    assert "config.min_votes = 2.0 in run.json, 3.0 in this command" in line
    assert tree_digest(node) == before


def test_make_vote_refuses_to_write_into_an_input_node(tmp_path: Path, common: list[str]) -> None:
    node = tmp_path / "work" / "valid" / "a"
    before = tree_digest(node)
    rule = "VOTE_OPTS=--min-votes 2 --unpaired 1"
    line = error_line(make("vote", "OUT=a", "RUNS=a b", rule, *common))
    assert f"input run {node}" in line
    assert tree_digest(node) == before

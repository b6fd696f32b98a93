"""Fixtures of the report's tests (report_testlib holds the world they are made of)."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_testlib import NODES, World, make_world

from rvos_report.cli import main


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("report-world"))


@pytest.fixture(scope="session")
def report(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of the world's four nodes against its truth: 3 frames an expression, overlay
    videos of the worst expression and of vid1/2."""
    out = tmp_path_factory.mktemp("report") / "report"
    args = [*NODES, *world.args(out, "--truth", str(world.truth), "--videos", "1")]
    assert main([*args, "--expression", "vid1/2", "--frames", "3"]) == 0
    return out

"""What the propagation command refuses to write: a finished run with other settings, an output
that is its input run, an empty split, an input run of a changed meta file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from vos_testlib import Setup, make_setup

from rvos_core.testing import tree_digest
from rvos_vos.propagate import main

pytestmark = pytest.mark.parity
FAST = ("--scales", "1.0", "--no-flip")


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return make_setup("aot", tmp_path, {"a": 1, "b": 1}, {"a": {"0": 0}, "b": {"0": 1}})


def refused(setup: Setup, out: Path, capsys: pytest.CaptureFixture, *names: object) -> None:
    """The command fails with exit status 2 and one line ``error: ...`` naming ``names``."""
    assert main([*setup.argv(out), *FAST]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for name in names:
        assert str(name) in err, (name, err)


def test_a_finished_run_asked_with_other_settings_is_refused(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    assert main([*setup.argv(out), *FAST]) == 0
    before = tree_digest(out)
    assert main([*setup.argv(out), *FAST, "--max-long-term", "3"]) == 2
    err = capsys.readouterr().err
    assert "complete with other settings" in err
    assert "config.memory.max_long_term = null in run.json, 3 in this command" in err
    assert tree_digest(out) == before


def test_an_output_that_is_the_input_run_is_refused(
    setup: Setup, capsys: pytest.CaptureFixture
) -> None:
    before = tree_digest(setup.run.root)
    refused(setup, setup.run.root / "sub" / "..", capsys, "input run", setup.run.root)
    assert tree_digest(setup.run.root) == before


def test_an_empty_split_is_refused(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    setup.dataset.meta_path.write_text(json.dumps({"videos": {}}))
    refused(setup, tmp_path / "out", capsys, setup.dataset.meta_path, "lists no videos")
    assert not (tmp_path / "out").exists()


def test_an_input_run_of_a_changed_meta_is_refused(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    meta = json.loads(setup.dataset.meta_path.read_text())
    del meta["videos"]["b"]
    setup.dataset.meta_path.write_text(json.dumps(meta))
    names = (setup.run.root / "run.json", setup.dataset.meta_path, "has changed")
    refused(setup, tmp_path / "out", capsys, *names)
    assert not (tmp_path / "out").exists()

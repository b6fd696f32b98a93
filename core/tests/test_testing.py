"""Where parity fixtures are found, and what happens without them (rvos_core.testing)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rvos_core.errors import ConfigError
from rvos_core.testing import PARITY_ENV, REQUIRE_PARITY_ENV, parity_dir

ROOT = Path(__file__).resolve().parents[2]
PARITY_TESTS = """
from rvos_core.testing import parity_dir


def test_one():
    assert parity_dir("eval").is_dir()


def test_two():
    assert parity_dir("fusion").is_dir()
"""


def _pytest(parity_root: Path, required: bool) -> subprocess.CompletedProcess[str]:
    """Two parity tests of a file of their own, run by pytest as CI runs it."""
    tests = parity_root.parent / "test_two_parity_tests.py"
    tests.write_text(PARITY_TESTS)
    env = {k: v for k, v in os.environ.items() if k != REQUIRE_PARITY_ENV}
    env[PARITY_ENV] = str(parity_root)
    if required:
        env[REQUIRE_PARITY_ENV] = "1"
    command = [sys.executable, "-m", "pytest", "-c", "pytest.ini", "-p", "no:cacheprovider"]
    return subprocess.run(
        [*command, str(tests)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_parity_tests_skip_with_one_summary_line_without_the_root(tmp_path: Path) -> None:
    absent = tmp_path / "absent"
    done = _pytest(absent, required=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if str(absent) in line]
    assert len(lines) == 1 and lines[0].startswith("SKIPPED [2]"), done.stdout
    assert PARITY_ENV in lines[0]


def test_parity_tests_fail_without_the_root_when_required(tmp_path: Path) -> None:
    done = _pytest(tmp_path / "absent", required=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{REQUIRE_PARITY_ENV}=1" in done.stdout and "SKIPPED" not in done.stdout


def test_parity_dir_skips_an_unmarked_caller_without_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PARITY_ENV, str(tmp_path / "absent"))
    monkeypatch.delenv(REQUIRE_PARITY_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="absent"):
        parity_dir("eval")
    monkeypatch.setenv(REQUIRE_PARITY_ENV, "1")
    with pytest.raises(ConfigError, match=REQUIRE_PARITY_ENV):
        parity_dir("eval")


def test_a_missing_fixture_under_an_existing_root_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PARITY_ENV, str(tmp_path))
    monkeypatch.delenv(REQUIRE_PARITY_ENV, raising=False)
    (tmp_path / "present").mkdir()
    assert parity_dir("present") == tmp_path / "present"
    with pytest.raises(ConfigError, match="missing"):
        parity_dir("absent")

"""The pieces every command-line tool shares (rvos_core.cli)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pytest

from rvos_core.cli import add_dataset_args, dataset_from_args, run_main
from rvos_core.command import Parser
from rvos_core.errors import InputError
from rvos_core.synthetic import VideoSpec, write_refytvos


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="tool")
    add_dataset_args(parser)
    return parser


@pytest.mark.parametrize("option", ["--data", "--split"])
def test_an_empty_option_is_a_usage_error(option: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _parser().parse_args([option, ""])
    assert info.value.code == 2
    assert f"error: tool: argument {option}: empty value (see tool -h)\n" == capsys.readouterr().err


def test_dataset_options_need_no_paths_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_refytvos(tmp_path / "data", "valid", [VideoSpec("v", 1, 1, (4, 4))], frames=False)
    broken = tmp_path / "paths.env"
    broken.write_text("this is not NAME = value\n")
    monkeypatch.setenv("RVOS_PATHS_ENV", str(broken))
    args = _parser().parse_args(["--data", str(tmp_path / "data"), "--split", "valid"])
    assert list(dataset_from_args(args).videos) == ["v"]


def _raising(error: BaseException):
    def body(argv: Sequence[str] | None) -> int:
        raise error

    return body


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (InputError("/x/m.png", "mask PNG is missing"), "error: /x/m.png: mask PNG is missing"),
        (
            IsADirectoryError(21, "Is a directory", "/x/out.zip"),
            "error: /x/out.zip: Is a directory",
        ),
        (
            OSError(16, "Device or resource busy", "a.tmp", None, "."),
            "error: a.tmp -> .: Device or resource busy",
        ),
    ],
)
def test_errors_are_one_line(
    error: BaseException, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main(_raising(error)) == 2
    assert capsys.readouterr().err == line + "\n"

from __future__ import annotations

from pathlib import Path

import pytest

from rvos_core.errors import ConfigError
from rvos_core.paths import load_paths, parse_paths_env

ALL = "DATA = d\nPRETRAINED = /abs/pre\nCHECKPOINTS = ck # trailing comment\nWORK = w\nSPLIT = valid\n"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATA", "PRETRAINED", "CHECKPOINTS", "WORK", "SPLIT", "RVOS_PATHS_ENV"):
        monkeypatch.delenv(name, raising=False)


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    (tmp_path / "paths.env").write_text("# comment\n\n" + ALL)
    paths = load_paths(tmp_path / "paths.env")
    assert paths.data == tmp_path / "d"
    assert paths.pretrained == Path("/abs/pre")
    assert paths.checkpoints == tmp_path / "ck"
    assert paths.split == "valid"


def test_precedence_override_then_environment_then_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "paths.env").write_text(ALL)
    monkeypatch.setenv("DATA", "/from/env")
    monkeypatch.setenv("SPLIT", "test")
    paths = load_paths(tmp_path / "paths.env", split="train")
    assert paths.data == Path("/from/env")
    assert paths.split == "train"


def test_found_upwards_and_through_rvos_paths_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "paths.env").write_text(ALL)
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    assert load_paths().source == tmp_path / "paths.env"
    other = tmp_path / "other.env"
    other.write_text(ALL.replace("SPLIT = valid", "SPLIT = test"))
    monkeypatch.setenv("RVOS_PATHS_ENV", str(other))
    assert load_paths().split == "test"


def test_missing_variable_is_named_when_used(tmp_path: Path) -> None:
    (tmp_path / "paths.env").write_text(ALL.replace("WORK = w\n", "WORK =\n"))
    paths = load_paths(tmp_path / "paths.env")
    assert paths.data == tmp_path / "d"
    with pytest.raises(ConfigError, match="WORK is not set"):
        _ = paths.work
    with pytest.raises(ConfigError, match=r"WORK is not set: add it to paths\.env or pass --out"):
        paths.require_dir("WORK", "--out")


def test_no_paths_env_needs_no_variable_until_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPLIT", "test")
    paths = load_paths()
    assert paths.source is None and paths.split == "test"
    with pytest.raises(ConfigError, match=r"DATA is not set: add it to paths\.env or pass --data"):
        paths.value("DATA", "--data")


def test_relative_environment_and_override_values_are_relative_to_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "paths.env").write_text(ALL)
    here = tmp_path / "elsewhere"
    here.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.setenv("WORK", "from_env")
    monkeypatch.setenv("CHECKPOINTS", "")  # empty: unset, the file's value counts
    paths = load_paths(tmp_path / "paths.env", data="given")
    assert paths.work == here / "from_env"
    assert paths.data == here / "given"
    assert paths.checkpoints == tmp_path / "ck"


def test_unreadable_paths_env_is_named(tmp_path: Path) -> None:
    (tmp_path / "paths.env").mkdir()
    with pytest.raises(ConfigError, match=r"paths.env: unreadable"):
        parse_paths_env(tmp_path / "paths.env")


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "paths.env").write_text("DATA = x\nthis is wrong\n")
    with pytest.raises(ConfigError, match=r"paths.env:2"):
        parse_paths_env(tmp_path / "paths.env")


def test_require_dir_names_the_variable(tmp_path: Path) -> None:
    (tmp_path / "paths.env").write_text(ALL)
    with pytest.raises(ConfigError, match=r"DATA = .* is not a folder"):
        load_paths(tmp_path / "paths.env").require_dir("DATA")


def test_repository_paths_env_defines_every_variable() -> None:
    values = parse_paths_env(Path(__file__).resolve().parents[2] / "paths.env")
    assert set(values) == {"DATA", "PRETRAINED", "CHECKPOINTS", "WORK", "SPLIT"}

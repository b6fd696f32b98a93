from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from fusion_testlib import bits, make_run

from rvos_core.data import Dataset
from rvos_fusion.cli import main


def digest(root: Path) -> str:
    sha = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "run.json"):
        sha.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return sha.hexdigest()


def test_vote_through_the_cli_with_workers(tmp_path: Path, tiny: Dataset) -> None:
    data = tiny.root.parent
    runs = [
        make_run(tmp_path / n, tiny, {e: bits(m, m) for e in "012"})
        for n, m in (("a", "1100"), ("b", "0110"), ("c", "0011"))
    ]
    common = ["--min-votes", "3", "--unpaired", "2", "--data", str(data), "--split", "valid"]
    for workers in ("1", "2"):
        assert (
            main(
                [
                    "vote",
                    *(str(r.root) for r in runs),
                    "--out",
                    str(tmp_path / f"w{workers}"),
                    "--workers",
                    workers,
                    *common,
                ]
            )
            == 0
        )
    assert digest(tmp_path / "w1") == digest(tmp_path / "w2")


def test_cli_errors_exit_2_with_the_file(
    tmp_path: Path, tiny: Dataset, capsys: pytest.CaptureFixture
) -> None:
    data = tiny.root.parent
    code = main(
        [
            "vote",
            str(tmp_path / "nothing"),
            "--out",
            str(tmp_path / "o"),
            "--min-votes",
            "1",
            "--unpaired",
            "1",
            "--data",
            str(data),
            "--split",
            "valid",
        ]
    )
    assert code == 2
    assert "nothing: run folder does not exist" in capsys.readouterr().err
    assert (
        main(
            [
                "split-pth",
                str(tmp_path / "x.pth"),
                "--domain",
                "logit",
                "--out",
                str(tmp_path / "o"),
                "--data",
                str(data),
                "--split",
                "valid",
            ]
        )
        == 2
    )
    assert "x.pth: file is missing" in capsys.readouterr().err


def test_submission_through_the_cli(tmp_path: Path, tiny: Dataset) -> None:
    run = make_run(tmp_path / "r", tiny, {e: np.zeros((2, 1, 4), bool) for e in "012"})
    assert (
        main(
            [
                "submission",
                str(run.root),
                "--out",
                str(tmp_path / "s.zip"),
                "--data",
                str(tiny.root.parent),
                "--split",
                "valid",
            ]
        )
        == 0
    )
    assert (tmp_path / "s.zip").is_file()

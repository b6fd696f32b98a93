from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rvos_core.errors import ConfigError, InputError
from rvos_core.testing import parity_dir
from rvos_nn.parity import ParityCheck, fixture_kind, magnitude_atol, main, run_fixture


def _toy(root: Path, name: str) -> Path:
    folder = root / "toy" / name
    folder.mkdir(parents=True)
    torch.save(torch.linspace(-1, 1, 6).reshape(2, 3), folder / "value.pt")
    return folder


def test_kind_from_manifest_then_config_then_folder(tmp_path: Path) -> None:
    first = tmp_path / "a"
    first.mkdir()
    (first / "manifest.json").write_text(json.dumps({"fixture": "from_manifest"}))
    (first / "config.json").write_text(json.dumps({"fixture": "from_config"}))
    assert fixture_kind(first, []) == "from_manifest"
    (first / "manifest.json").unlink()
    assert fixture_kind(first, []) == "from_config"
    (first / "config.json").write_text(json.dumps({"model": "a_model", "module": "x"}))
    assert fixture_kind(first, []) == "a_model"
    known = ["vit", "uninext.vit", "uninext.model.vit"]
    for parts, kind in (
        (("uninext", "model", "vit"), "uninext.model.vit"),
        (("uninext", "vit"), "uninext.vit"),
    ):
        folder = tmp_path.joinpath("parity", *parts)
        folder.mkdir(parents=True)
        assert fixture_kind(folder, known) == kind
    with pytest.raises(ConfigError, match="use --kind"):
        fixture_kind(tmp_path / "parity" / "uninext", known)


def test_check_tolerance_is_atol_plus_rtol_times_expected(tmp_path: Path) -> None:
    check = ParityCheck(tmp_path)
    # |diff| = 3e-5 against 1e-5 + 1e-5 * 2.00003 = 3.00003e-5: inside; 4e-5 against 3.00004e-5: outside
    assert check.close("in", [1.0, 2.0], [1.0, 2.00003], atol=1e-5, rtol=1e-5).ok
    assert not check.close("out", [1.0, 2.0], [1.0, 2.00004], atol=1e-5, rtol=1e-5).ok
    assert not check.close("shape", [1.0, 2.0], [[1.0, 2.0]]).ok
    assert not check.close("nan", [float("nan")], [float("nan")]).ok
    assert check.equal("ids", torch.tensor([3, 4]), [3, 4]).ok
    assert not check.equal("ids", torch.tensor([3, 4]), [3, 5]).ok
    assert check.equal("tokens", ["<s>", "a"], ["<s>", "a"]).ok
    assert not check.equal("tokens", ["<s>", "a"], ["<s>", "b"]).ok
    assert not check.ok and "FAILED: 5 of 8 outside tolerance" in check.format()
    assert not ParityCheck(tmp_path).ok  # a handler that compares nothing does not pass


def test_magnitude_tolerance_follows_the_largest_expected_value(tmp_path: Path) -> None:
    check = ParityCheck(tmp_path)
    expected = torch.tensor([-2000.0, 0.5, 1000.0])
    assert magnitude_atol(expected, 1e-5) == pytest.approx(0.02)
    # the small entry may move by 0.02 + 1e-5 * 0.5, not by 0.021
    near = check.close_to_magnitude("near", expected + 0.02, expected, scale=1e-5, rtol=1e-5)
    assert near.ok and near.atol == pytest.approx(0.02)
    assert not check.close_to_magnitude(
        "far", expected + torch.tensor([0.0, 0.021, 0.0]), expected, scale=1e-5, rtol=1e-5
    ).ok
    assert magnitude_atol(torch.zeros(0), 1e-5) == 0.0


def test_registered_handlers_and_cli(
    tmp_path: Path, registered: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    close, far = _toy(tmp_path, "close"), _toy(tmp_path, "far")
    assert run_fixture(close).ok
    assert not run_fixture(far).ok
    assert run_fixture(far, kind="toy.close").ok
    assert main([str(close)]) == 0
    out = capsys.readouterr().out
    assert "ok   value" in out and "OK: 2 comparisons within tolerance" in out
    assert main([str(far)]) == 1
    assert "FAIL value" in capsys.readouterr().out
    assert main([str(tmp_path / "absent")]) == 2
    assert "parity fixture folder does not exist" in capsys.readouterr().err
    with pytest.raises(InputError):
        run_fixture(tmp_path / "absent")
    with pytest.raises(ConfigError, match=r"toy\.close, toy\.far"):
        run_fixture(close, kind="nope")


@pytest.mark.parity
def test_module_cli_on_the_text_tokenizer_fixture() -> None:
    fixture = parity_dir("text_tokenizer")
    done = subprocess.run(
        [sys.executable, "-m", "rvos_nn.parity", str(fixture)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "max|diff| 0" in done.stdout and done.stdout.rstrip().splitlines()[-1].startswith("OK:")

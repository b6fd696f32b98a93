"""The whole RVOS path against upstream (shared/parity/uninext/model/*), through the parity runner."""

from __future__ import annotations

import pytest

from rvos_core.testing import parity_dir
from rvos_nn.parity import run_fixture


def _model_fixtures():
    root = parity_dir("uninext/model")
    found = sorted(p for p in root.iterdir() if (p / "config.json").is_file())
    assert found, f"no model fixture under {root}"
    return found


@pytest.mark.parity
@pytest.mark.slow
def test_model_fixtures_match_upstream():
    for folder in _model_fixtures():
        check = run_fixture(folder)
        assert check.ok, check.format()


@pytest.mark.parity
def test_runner_finds_every_uninext_fixture_kind():
    for name in ("uninext/vit", "uninext/convnext", "uninext/preprocess"):
        check = run_fixture(parity_dir(name))
        assert check.ok, check.format()

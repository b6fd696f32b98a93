"""Every comparison of the fixtures ``swin2d``, ``aot`` and ``deaot`` (rvos_vos.parity), through
the same entry ``python -m rvos_nn.parity`` uses: encoder, engine steps (teacher-forced), memory
schedule, the free-running procedure, full-size key layouts."""

from __future__ import annotations

import pytest

from rvos_core.testing import parity_dir
from rvos_nn.parity import run_fixture

pytestmark = pytest.mark.parity


@pytest.mark.parametrize("name", ["swin2d", "aot", "deaot"])
def test_fixture(name: str) -> None:
    check = run_fixture(parity_dir(name))
    assert check.ok, check.format()

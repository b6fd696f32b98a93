"""The mutr parity fixture through the handler registered with rvos_nn.parity."""

from __future__ import annotations

import pytest

from rvos_core.testing import parity_dir
from rvos_nn.parity import run_fixture


@pytest.mark.parity
def test_mutr_fixture_within_tolerance() -> None:
    check = run_fixture(parity_dir("mutr"))
    assert check.ok, check.format()
    names = {c.name for c in check.comparisons}
    # every part of the fixture was compared (outputs, MUTR's own intermediates, post-processing)
    for required in (
        "pred_masks",
        "pred_boxes",
        "MTA (calls)",
        "MTA[0]",
        "mti",
        "controller",
        "transformer.hs",
        "mask_logits",
        "query_index",
        "key_frame_index",
        "class_info constant over time",
    ):
        assert required in names

"""The soc parity fixture through the handler registered with rvos_nn.parity."""

from __future__ import annotations

import pytest

from rvos_core.testing import parity_dir
from rvos_nn.parity import run_fixture


@pytest.mark.parity
def test_soc_fixture_within_tolerance() -> None:
    check = run_fixture(parity_dir("soc"))
    assert check.ok, check.format()
    names = {c.name for c in check.comparisons}
    # every part of the fixture was compared (outputs, intermediates, post-processing)
    for required in (
        "preprocess.frames",
        "pred_masks",
        "pred_is_referred",
        "transformer.hs",
        "vita",
        "spatial_decoder",
        "lvf[-1]",
        "mask_logits",
        "query_index",
        "key_frame_index",
    ):
        assert required in names

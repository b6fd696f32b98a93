"""The referformer parity fixture through the handler registered with rvos_nn.parity."""

from __future__ import annotations

import pytest

from rvos_core.testing import parity_dir
from rvos_nn.parity import run_fixture


@pytest.mark.parity
def test_referformer_fixture_within_tolerance() -> None:
    check = run_fixture(parity_dir("referformer"))
    assert check.ok, check.format()
    names = {c.name for c in check.comparisons}
    # every part of the fixture was compared (outputs, intermediates, post-processing, predictor)
    for required in ("pred_masks", "transformer.hs", "pixel_decoder", "mask_logits", "query_index"):
        assert required in names

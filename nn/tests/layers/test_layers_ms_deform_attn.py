"""Multi-scale deformable attention: upstream parity and hand-computed sampling."""

from __future__ import annotations

import pytest
import torch
from layers_testlib import close, load

from rvos_core.testing import parity_dir
from rvos_nn.layers import MSDeformAttn, ms_deform_attn_core
from rvos_nn.parity import run_fixture


@pytest.mark.parity
def test_fixture_within_tolerance() -> None:
    check = run_fixture(parity_dir("ms_deform_attn"))
    assert check.ok, check.format()
    cases = load("ms_deform_attn", "core_cases.pt")
    modules = load("ms_deform_attn", "module_inputs.pt")
    assert len(check.comparisons) == len(cases) + 3 * len(modules)


def _one_point(value: torch.Tensor, x: float, y: float) -> torch.Tensor:
    """Sample a single-level [H, W] map at (x, y) with weight 1: a scalar."""
    h, w = value.shape
    locations = torch.tensor([x, y]).view(1, 1, 1, 1, 1, 2)
    weights = torch.ones(1, 1, 1, 1, 1)
    return ms_deform_attn_core(value.reshape(1, h * w, 1, 1), [(h, w)], locations, weights).reshape(
        ()
    )


def test_sampling_is_bilinear_with_zero_padding() -> None:
    value = torch.arange(12, dtype=torch.float32).view(3, 4)  # value[i, j] = 4 i + j
    # pixel centre (i + 0.5) / H, (j + 0.5) / W reads value[i, j]
    assert _one_point(value, (2 + 0.5) / 4, (1 + 0.5) / 3).item() == 6.0
    # half-way between columns 1 and 2 of row 0: (1 + 2) / 2
    assert _one_point(value, 2 / 4, 0.5 / 3).item() == pytest.approx(1.5)
    # the left edge of the map (x = 0): half of column 0 and half of zero padding
    assert _one_point(value, 0.0, (2 + 0.5) / 3).item() == pytest.approx(8 / 2)


def test_levels_and_weights_are_summed() -> None:
    a, b = torch.full((2, 2), 3.0), torch.full((1, 3), 5.0)
    value = torch.cat([a.reshape(-1), b.reshape(-1)]).view(1, 7, 1, 1)
    locations = torch.full((1, 1, 1, 2, 1, 2), 0.5)
    weights = torch.tensor([0.25, 0.75]).view(1, 1, 1, 2, 1)
    out = ms_deform_attn_core(value, [(2, 2), (1, 3)], locations, weights)
    assert out.item() == pytest.approx(0.25 * 3 + 0.75 * 5)


def test_padding_mask_zeroes_values_without_renormalising() -> None:
    torch.manual_seed(0)
    module = MSDeformAttn(d_model=16, n_levels=1, n_heads=2, n_points=1).eval()
    with torch.no_grad():
        module.sampling_offsets.weight.zero_()
        module.sampling_offsets.bias.zero_()
    x = torch.randn(1, 4, 16)
    reference = torch.full((1, 1, 1, 2), 0.5)  # centre of a 2x2 map: mean of its 4 values
    query = torch.randn(1, 1, 16)
    mask = torch.tensor([[True, False, False, False]])
    out = module(query, reference, x, [(2, 2)], mask)[0]
    value = module.value_proj(x)[0]
    expected = module.output_proj(value[1:].sum(0) / 4)  # masked token contributes zero
    close(out[0, 0], expected, rtol=1e-5, atol=1e-6)


def test_core_runs_in_float32_under_autocast() -> None:
    torch.manual_seed(0)
    value = torch.randn(1, 30, 2, 4).bfloat16()
    locations = torch.rand(1, 5, 2, 1, 3, 2)
    weights = torch.rand(1, 5, 2, 1, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = ms_deform_attn_core(value, [(5, 6)], locations, weights)
    expected = ms_deform_attn_core(value.float(), [(5, 6)], locations, weights)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, expected.bfloat16())


def test_bad_reference_shape_is_refused() -> None:
    module = MSDeformAttn(d_model=16, n_levels=1, n_heads=2, n_points=1)
    with pytest.raises(ValueError, match="2 or 4"):
        module(torch.zeros(1, 1, 16), torch.zeros(1, 1, 1, 3), torch.zeros(1, 4, 16), [(2, 2)])

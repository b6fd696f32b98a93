"""Parity of the 2-D Swin encoder with the upstream module (fixture ``swin2d``)."""

from __future__ import annotations

import pytest
import torch
from vos_testlib import fixture_config, load_pt

from rvos_vos.swin2d import SWIN_VARIANTS, SwinConfig, SwinTransformer2D

pytestmark = pytest.mark.parity
TOL = {"atol": 1e-5, "rtol": 1e-5}  # the fixture README's recommendation


def encoder() -> SwinTransformer2D:
    model = SwinTransformer2D(config=SwinConfig.from_upstream(fixture_config("swin2d")["tiny"]))
    model.load_state_dict(load_pt("swin2d", "state_dict.pt"), strict=True)
    return model.eval()


def test_state_dict_layout() -> None:
    cfg = fixture_config("swin2d")
    state = encoder().state_dict()
    assert len(state) == cfg["num_keys"]
    assert (
        sum(v.numel() for k, v in state.items() if k not in cfg["buffers"]) == cfg["num_parameters"]
    )
    assert sorted(k for k, v in state.items() if v.dtype == torch.int64) == sorted(cfg["buffers"])


def test_full_size_variant_is_the_fixture_s() -> None:
    full = SwinConfig.from_upstream(fixture_config("swin2d")["full_size_it_stands_for"])
    assert full == SWIN_VARIANTS["swin_large"]


@pytest.mark.parametrize("name", sorted(load_pt("swin2d", "io.pt")["inputs"]))
def test_outputs(name: str) -> None:
    io = load_pt("swin2d", "io.pt")
    with torch.no_grad():
        outs = encoder()(io["inputs"][name])
    expected = io["outputs"][name]
    # Upstream returns the last stage map twice; the module returns each stage once.
    assert len(expected) == len(outs) + 1 and torch.equal(expected[-1], expected[-2])
    for out, ref in zip(outs, expected, strict=False):
        torch.testing.assert_close(out, ref, **TOL)


def test_intermediates() -> None:
    io = load_pt("swin2d", "io.pt")
    recorded = io["frame0_intermediates"]
    model = encoder()
    seen: dict[str, torch.Tensor] = {}
    for i, stage in enumerate(model.layers):
        for j, block in enumerate(stage.blocks):
            block.register_forward_hook(
                lambda _m, _i, out, key=f"layers.{i}.blocks.{j}": seen.__setitem__(key, out)
            )
    model.patch_embed.register_forward_hook(lambda _m, _i, out: seen.__setitem__("patch", out))
    with torch.no_grad():
        model(io["inputs"]["frame0_64x96"])
    torch.testing.assert_close(seen["patch"].permute(0, 3, 1, 2), recorded["patch_embed"], **TOL)
    assert set(recorded["block_outputs"]) == set(seen) - {"patch"}
    for key, ref in recorded["block_outputs"].items():
        torch.testing.assert_close(seen[key].flatten(1, 2), ref, **TOL)

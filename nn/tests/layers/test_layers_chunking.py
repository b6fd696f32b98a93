"""Chunked evaluation (rows, attention windows, deformable-attention batches) changes no value."""

from __future__ import annotations

import pytest
import torch
from layers_testlib import load

from rvos_core.testing import parity_dir
from rvos_nn.layers import chunking, ms_deform_attn, video_swin
from rvos_nn.layers.chunking import rowwise
from rvos_nn.layers.parity import fixture_video_swin


def test_rowwise_equals_one_call() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 4)
    x = torch.randn(5, 7, 3)
    with torch.no_grad():
        expected = layer(x).relu()
        out = rowwise(lambda t: layer(t).relu(), x, rows=4)
    assert out.shape == (5, 7, 4)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)


@pytest.mark.parity
def test_video_swin_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    backbone = fixture_video_swin(parity_dir("video_swin"))
    case = next(iter(load("video_swin", "inputs.pt").values()))
    with torch.no_grad():
        expected = backbone(case["samples"], case["num_frames"])
        monkeypatch.setattr(video_swin, "ATTENTION_ELEMENTS", 1)  # one window at a time
        monkeypatch.setattr(chunking, "ROWS", 7)
        chunked = backbone(case["samples"], case["num_frames"])
    # other GEMM shapes may sum in another order: the README's tolerance on stage outputs
    for a, b in zip(chunked, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parity
def test_deformable_attention_batch_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    cases = load("ms_deform_attn", "core_cases.pt")
    case = next(c["inputs"] for c in cases if c["inputs"]["value"].shape[0] > 1)
    shapes = [(int(h), int(w)) for h, w in case["value_spatial_shapes"].tolist()]
    args = (case["value"], shapes, case["sampling_locations"], case["attention_weights"])
    expected = ms_deform_attn.ms_deform_attn_core(*args)
    monkeypatch.setattr(ms_deform_attn, "SAMPLED_ELEMENTS", 1)  # one batch element at a time
    # the README's tolerance on the core function
    torch.testing.assert_close(
        ms_deform_attn.ms_deform_attn_core(*args), expected, rtol=1e-5, atol=1e-6
    )

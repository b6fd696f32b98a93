"""detectron2-exact resize, normalisation and padding (shared/parity/uninext/preprocess)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from rvos_core.testing import parity_dir
from rvos_uninext.preprocess import (
    clean_expression,
    pad_batch,
    prepare_frames,
    resize_frame,
    resized_shape,
)


def _cases():
    folder = parity_dir("uninext/preprocess")
    spec = json.loads((folder / "cases.json").read_text())
    return folder, spec


@pytest.mark.parity
def test_resize_is_uint8_exact_and_sizes_match():
    folder, spec = _cases()
    assert spec["cases"]
    for name, case in spec["cases"].items():
        original = Image.open(folder / name / "original.png").convert("RGB")
        expected = np.asarray(Image.open(folder / name / "resized_uint8.png").convert("RGB"))
        assert [original.height, original.width] == case["original_hw"]
        size = resized_shape(original.height, original.width, spec["short_edge"], spec["max_size"])
        assert list(size) == case["resized_hw"], name
        got = resize_frame(original, spec["short_edge"], spec["max_size"])
        assert np.array_equal(got, expected), name


@pytest.mark.parity
def test_padding_and_mask_match_cases():
    folder, spec = _cases()
    for name, case in spec["cases"].items():
        original = Image.open(folder / name / "original.png").convert("RGB")
        batch = prepare_frames([original], spec["short_edge"], spec["max_size"])
        assert list(batch.tensors.shape[-2:]) == case["padded_hw"], name
        assert [list(s) for s in batch.image_sizes] == case["imagelist_image_sizes"], name
        assert int(batch.mask.sum()) == case["padding_mask_true_count"], name
        h, w = case["resized_hw"]
        assert not batch.mask[0, :h, :w].any()
        assert bool(batch.mask[0, h:].all()) and bool(batch.mask[0, :, w:].all())
        assert not batch.tensors[0, :, h:].any() and not batch.tensors[0, :, :, w:].any()


@pytest.mark.parity
def test_normalised_tensor_is_bitwise_equal():
    folder, spec = _cases()
    for tensors_file in sorted(folder.glob("*/tensors.pt")):
        expected = torch.load(tensors_file, map_location="cpu", weights_only=True)
        original = Image.open(tensors_file.parent / "original.png").convert("RGB")
        batch = prepare_frames([original], spec["short_edge"], spec["max_size"])
        assert torch.equal(batch.mask, expected["padding_mask"])
        rows = expected["padded_input_last120rows"].shape[-2]
        assert torch.equal(batch.tensors[..., -rows:, :], expected["padded_input_last120rows"])


def test_rounding_is_half_up_in_python_floats():
    # 960 x 1281 -> scale 0.5 -> long side 640.5 -> 641; 300 x 1200 -> 480 x 1920 -> capped at 1333.
    assert resized_shape(960, 1281) == (480, 641)
    assert resized_shape(300, 1200) == (int(480 * 1333 / 1920 + 0.5), 1333)
    assert resized_shape(480, 640) == (480, 640)


def test_pad_batch_rounds_up_to_32():
    batch = pad_batch([torch.ones(3, 33, 64)])
    assert tuple(batch.tensors.shape) == (1, 3, 64, 64)
    assert int(batch.mask.sum()) == 64 * 64 - 33 * 64


def test_clean_expression_follows_upstream_clean_string():
    text = 'A man\'s "hat" (left-most/right), #1: big; ok? yes!*'
    assert clean_expression(text) == "a mans hat left most right 1 big ok yes"
    assert clean_expression("") == ""

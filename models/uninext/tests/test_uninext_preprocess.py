"""detectron2-exact resize, normalisation and padding; upstream's expression cleaning."""

from __future__ import annotations

import pytest
import torch

from rvos_core.testing import parity_dir
from rvos_nn.parity import ParityCheck
from rvos_uninext.parity import preprocess_parity
from rvos_uninext.preprocess import clean_expression, normalize, pad_batch, resized_shape


@pytest.mark.parity
def test_preprocessing_matches_detectron2():
    folder = parity_dir("uninext/preprocess")
    check = ParityCheck(folder)
    preprocess_parity(folder, check)
    assert check.ok, check.format()


def test_rounding_is_half_up_in_python_floats():
    # 960 x 1281: scale 0.5 -> 640.5 -> 641; 300 x 1200 -> 480 x 1920 > 1333 -> 333.25 x 1333.
    assert resized_shape(960, 1281) == (480, 641)
    assert resized_shape(300, 1200) == (333, 1333)
    assert resized_shape(480, 640) == (480, 640)
    assert resized_shape(1281, 960) == (641, 480)


def test_normalize_and_pad_by_hand():
    image = torch.full((3, 2, 3), 255, dtype=torch.uint8)
    normalised = normalize(image)
    assert torch.allclose(normalised[0], torch.full((2, 3), (255 - 123.675) / 58.395))
    batch = pad_batch([normalised], divisibility=4)
    assert tuple(batch.tensors.shape) == (1, 3, 4, 4)
    assert batch.image_sizes == ((2, 3),)
    assert batch.mask[0].tolist() == [[False] * 3 + [True]] * 2 + [[True] * 4] * 2
    assert not batch.tensors[0, :, 2:].any() and not batch.tensors[0, :, :, 3:].any()


def test_pad_batch_rounds_up_to_32():
    batch = pad_batch([torch.ones(3, 33, 64)])
    assert tuple(batch.tensors.shape) == (1, 3, 64, 64)
    assert int(batch.mask.sum()) == 64 * 64 - 33 * 64


def test_clean_expression_follows_upstream_clean_string():
    text = 'A man\'s "hat" (left-most/right), #1: big; ok? yes!*'
    assert clean_expression(text) == "a mans hat left most right 1 big ok yes"
    assert clean_expression("") == ""

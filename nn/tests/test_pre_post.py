"""Frame preprocessing, one-query-per-video post-processing, option parsing, forward recorder."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch import nn

from rvos_core.errors import ConfigError
from rvos_nn.hooks import ForwardRecorder
from rvos_nn.options import parse_bool, parse_int
from rvos_nn.postprocess import postprocess, select_query
from rvos_nn.preprocess import (
    detr_short_side,
    preprocess_frames,
    resize_short_side,
    resized_size,
)


def test_resize_follows_torchvision_int_semantics() -> None:
    # short side -> size, long side int(size * long / short) (truncated), orientation kept
    assert resized_size(181, 109, 60) == (99, 60)  # 60 * 181 / 109 = 99.6
    assert resized_size(109, 181, 60) == (60, 99)
    assert resized_size(1280, 720, 360) == (640, 360)
    assert resized_size(100, 100, 360) == (360, 360)
    image = Image.new("RGB", (640, 360))
    assert resize_short_side(image, 360) is image


def test_detr_random_resize_by_hand() -> None:
    # RandomResize([size], max_size): shrink the short target when the long side would pass max_size
    assert detr_short_side(1280, 720, 360, 640) == 360  # 1280 / 720 * 360 = 640, not above
    assert detr_short_side(1000, 500, 360, 640) == 320  # 720 > 640: round(640 * 500 / 1000)
    assert detr_short_side(197, 113, 60, 100) == 57  # round(100 * 113 / 197) = round(57.36)
    assert detr_short_side(4, 1, 100, 10) == 2  # round(2.5): Python rounds half to even
    assert detr_short_side(1000, 500, 360, None) == 360
    frames = [Image.new("RGB", (197, 113))]
    assert preprocess_frames(frames, 60, max_size=100).shape == (1, 3, 57, 99)  # int(57*197/113)


def test_normalisation_by_hand() -> None:
    image = Image.new("RGB", (2, 2), color=(255, 0, 128))
    x = preprocess_frames([image], 2)
    expected = [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor(expected), rtol=0, atol=1e-6)


def test_query_choice_uses_the_time_mean() -> None:
    # query 0 is best in 2 of 3 frames but query 1 has the higher mean probability
    logits = torch.tensor([[[0.2], [0.0]], [[0.2], [0.0]], [[-3.0], [2.0]]])
    query, per_query, class_info = select_query(logits)
    assert query == 1
    torch.testing.assert_close(per_query[:, 0], logits.sigmoid().mean(0)[:, 0])
    torch.testing.assert_close(class_info, logits[:, 1, 0].sigmoid())


def test_postprocess_resizes_logits_then_applies_sigmoid() -> None:
    masks = torch.tensor([[[[-1.0, 3.0]], [[5.0, 5.0]]]])  # [T=1, Q=2, h=1, w=2]
    result = postprocess(torch.tensor([[[1.0], [0.0]]]), masks, (2, 4))
    assert result.query_index == 0
    # bilinear, align_corners False, 2 -> 4 columns: -1, 0, 2, 3
    torch.testing.assert_close(result.mask_logits[0], torch.tensor([[-1.0, 0.0, 2.0, 3.0]] * 2))
    torch.testing.assert_close(result.probs, result.mask_logits.sigmoid())


def test_option_parsing() -> None:
    assert parse_bool("reuse", " Yes ") and not parse_bool("reuse", "0")
    with pytest.raises(ConfigError, match="reuse='maybe'"):
        parse_bool("reuse", "maybe")
    assert parse_int("n", "7", minimum=0) == 7
    with pytest.raises(ConfigError, match="n='x': not an integer"):
        parse_int("n", "x", minimum=0)
    with pytest.raises(ConfigError, match=">= 1"):
        parse_int("n", "0", minimum=1)


def test_forward_recorder_keeps_calls_in_order_and_unhooks() -> None:
    model = nn.Sequential(nn.Identity(), nn.Identity())
    with ForwardRecorder(model, ["0"]) as recorder:
        model(torch.ones(1))
        model(torch.zeros(1))
    model(torch.full((1,), 2.0))
    assert [float(x) for x in recorder.calls["0"]] == [1.0, 0.0]

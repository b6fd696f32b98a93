"""Backbone reuse, the competition resize of the frames, and the predictor's options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from soc_testlib import TEXTS, tiny_model, tiny_tokenizer, video_frames

from rvos_core.errors import ConfigError, InputError
from rvos_nn.predictor import PredictorContext
from rvos_nn.preprocess import preprocess_frames
from rvos_nn.testing import pretrained_folder
from rvos_soc import SOCPredictor
from rvos_soc.entry import ENTRY

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def test_backbone_reuse_equals_one_forward_per_expression(model, tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer(tmp_path)
    config = model.config
    video = preprocess_frames(
        video_frames(5, (50, 70)), config.eval_short_size, config.eval_max_size
    )
    size = torch.tensor(video.shape[-2:])
    with torch.no_grad():
        features = model.encode_video(video)
        reused, separate = [], []
        for text in TEXTS:
            tokens = tokenizer([text])
            words = model.encode_text(tokens.input_ids, tokens.attention_mask)
            reused.append(model.decode(features, words, size))
            separate.append(model(video, tokens.input_ids, tokens.attention_mask, size))
    for a, b in zip(reused, separate, strict=True):
        for name in ("pred_is_referred", "pred_boxes", "pred_masks", "pred_logit"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(reused[0].pred_masks, reused[1].pred_masks)  # the texts matter


def test_predictor_with_and_without_reuse(model, tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer(tmp_path)
    frames = video_frames(4, (40, 60))
    with torch.no_grad():
        fast = list(SOCPredictor(model, tokenizer, CPU).predict(frames, TEXTS))
        slow = list(
            SOCPredictor(model, tokenizer, CPU, reuse_backbone=False).predict(frames, TEXTS)
        )
    assert len(fast) == len(TEXTS)
    for a, b in zip(fast, slow, strict=True):
        assert a.probs.shape == (4, 40, 60) and a.probs.dtype == np.float32
        assert a.scores.shape == (4,) and np.all((a.scores > 0) & (a.scores < 1))
        assert np.array_equal(a.probs, b.probs) and np.array_equal(a.scores, b.scores)


def test_predictor_feeds_the_detr_resized_video(model, tmp_path: Path) -> None:
    # tiny variant: RandomResize([64], max_size=112). A 60 x 200 frame: 200 / 60 * 64 > 112, so
    # the short side becomes round(112 * 60 / 200) = 34 and the long side int(34 * 200 / 60) = 113.
    assert (model.config.eval_short_size, model.config.eval_max_size) == (64, 112)
    seen: list[tuple[int, ...]] = []
    handle = model.backbone.register_forward_pre_hook(
        lambda _module, args: seen.append(tuple(args[0].shape))
    )
    try:
        with torch.no_grad():
            (prediction,) = SOCPredictor(model, tiny_tokenizer(tmp_path), CPU).predict(
                video_frames(3, (60, 200)), TEXTS[:1]
            )
    finally:
        handle.remove()
    assert seen == [(1, 3, 3, 34, 113)]
    assert prediction.probs.shape == (3, 60, 200)  # back at the original size


def test_empty_video_is_refused(model, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="without frames"):
        list(SOCPredictor(model, tiny_tokenizer(tmp_path), CPU).predict([], TEXTS))


def test_create_predictor_options(model, tmp_path: Path) -> None:
    root = pretrained_folder(tmp_path)

    def context(**options: str) -> PredictorContext:
        return PredictorContext("tiny", CPU, "fp32", root, options)

    assert ENTRY.create_predictor(model, context()).reuse_backbone
    assert not ENTRY.create_predictor(model, context(reuse_backbone="false")).reuse_backbone
    with pytest.raises(ConfigError, match="reuse_backbone"):
        ENTRY.create_predictor(model, context(reuse_backbone="maybe"))
    with pytest.raises(ConfigError, match="tokenizer"):
        ENTRY.create_predictor(model, PredictorContext("tiny", CPU, "fp32", tmp_path / "none"))

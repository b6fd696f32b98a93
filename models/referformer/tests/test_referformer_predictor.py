"""Preprocessing, post-processing, backbone reuse, frame chunks and the predictor's options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from referformer_testlib import TEXTS, frames, tiny_model, tiny_tokenizer

from rvos_core.errors import ConfigError
from rvos_core.predictor import PredictorContext
from rvos_referformer import (
    ReferFormerPredictor,
    create_predictor,
    postprocess,
    preprocess_frames,
    resize_short_side,
    select_query,
)
from rvos_referformer.preprocess import resized_size


def test_resize_follows_torchvision_int_semantics() -> None:
    # short side -> size, long side int(size * long / short) (truncated), orientation kept
    assert resized_size(181, 109, 60) == (99, 60)  # 60 * 181 / 109 = 99.6
    assert resized_size(109, 181, 60) == (60, 99)
    assert resized_size(1280, 720, 360) == (640, 360)
    assert resized_size(100, 100, 360) == (360, 360)
    image = Image.new("RGB", (640, 360))
    assert resize_short_side(image, 360) is image


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


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def test_backbone_reuse_equals_one_forward_per_expression(model, tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer(tmp_path)
    video = preprocess_frames(frames(), model.config.resize_short)
    size = torch.tensor(video.shape[-2:])
    with torch.no_grad():
        features = model.encode_video(video)
        reused, separate = [], []
        for text in TEXTS:
            tokens = tokenizer([text])
            reused.append(
                model.decode(
                    features, model.encode_text(tokens.input_ids, tokens.attention_mask), size
                )
            )
            separate.append(model(video, tokens.input_ids, tokens.attention_mask, size))
    for a, b in zip(reused, separate, strict=True):
        for name in ("pred_logits", "pred_boxes", "pred_masks", "reference_points"):
            assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(reused[0].pred_masks, reused[1].pred_masks)  # the texts matter


def test_predictor_with_and_without_reuse(model, tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer(tmp_path)
    video = frames(count=4, size=(40, 60))
    with torch.no_grad():
        fast = list(
            ReferFormerPredictor(model, tokenizer, torch.device("cpu")).predict(video, TEXTS)
        )
        slow = list(
            ReferFormerPredictor(
                model, tokenizer, torch.device("cpu"), reuse_backbone=False
            ).predict(video, TEXTS)
        )
    assert len(fast) == len(TEXTS)
    for a, b in zip(fast, slow, strict=True):
        assert a.probs.shape == (4, 40, 60) and a.probs.dtype == np.float32
        assert a.scores.shape == (4,)
        assert np.array_equal(a.probs, b.probs) and np.array_equal(a.scores, b.scores)


def test_frame_chunks(model, tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer(tmp_path)
    video = frames(count=5, size=(40, 60))
    cpu = torch.device("cpu")
    with torch.no_grad():
        (whole,) = ReferFormerPredictor(model, tokenizer, cpu).predict(video, TEXTS[:1])
        (same,) = ReferFormerPredictor(model, tokenizer, cpu, chunk_frames=5).predict(
            video, TEXTS[:1]
        )
        (parts,) = ReferFormerPredictor(model, tokenizer, cpu, chunk_frames=2).predict(
            video, TEXTS[:1]
        )
    assert np.array_equal(whole.probs, same.probs)
    assert parts.probs.shape == whole.probs.shape and parts.scores.shape == whole.scores.shape
    assert not np.array_equal(parts.probs, whole.probs)  # clips see less temporal context


def test_create_predictor_options(model, tmp_path: Path) -> None:
    from referformer_testlib import pretrained_folder

    root = pretrained_folder(tmp_path)

    def context(**options: str) -> PredictorContext:
        return PredictorContext("tiny", torch.device("cpu"), "fp32", root, options)

    predictor = create_predictor(model, context(chunk_frames="8", reuse_backbone="false"))
    assert predictor.chunk_frames == 8 and not predictor.reuse_backbone
    with pytest.raises(ConfigError, match="chunk_frames"):
        create_predictor(model, context(chunk_frames="-1"))
    with pytest.raises(ConfigError, match="reuse_backbone"):
        create_predictor(model, context(reuse_backbone="maybe"))
    with pytest.raises(ConfigError, match="tokenizer"):
        create_predictor(
            model, PredictorContext("tiny", torch.device("cpu"), "fp32", tmp_path / "none")
        )

"""Backbone reuse, frame chunks and the predictor's options (pre/post-processing: core tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from referformer_testlib import TEXTS, frames, tiny_model, tiny_tokenizer

from rvos_core.errors import ConfigError
from rvos_nn.precision import inference_context
from rvos_nn.predictor import PredictorContext
from rvos_nn.testing import pretrained_folder
from rvos_referformer import ReferFormerPredictor, preprocess_frames
from rvos_referformer.entry import ENTRY


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


def test_bf16_autocast_runs_close_to_fp32(model, tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer(tmp_path)
    video = frames(count=3, size=(40, 60))
    predictor = ReferFormerPredictor(model, tokenizer, torch.device("cpu"))
    cpu = torch.device("cpu")
    with inference_context(cpu, "fp32"):
        (full,) = predictor.predict(video, TEXTS[:1])
    with inference_context(cpu, "bf16"):
        (half,) = predictor.predict(video, TEXTS[:1])
    assert half.probs.dtype == np.float32 and np.isfinite(half.probs).all()
    assert np.abs(half.probs - full.probs).max() < 0.25
    assert np.abs(half.scores - full.scores).max() < 0.05


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
    root = pretrained_folder(tmp_path)

    def context(**options: str) -> PredictorContext:
        return PredictorContext("tiny", torch.device("cpu"), "fp32", root, options)

    predictor = ENTRY.create_predictor(model, context(chunk_frames="8", reuse_backbone="false"))
    assert predictor.chunk_frames == 8 and not predictor.reuse_backbone
    with pytest.raises(ConfigError, match="chunk_frames"):
        ENTRY.create_predictor(model, context(chunk_frames="-1"))
    with pytest.raises(ConfigError, match="reuse_backbone"):
        ENTRY.create_predictor(model, context(reuse_backbone="maybe"))
    with pytest.raises(ConfigError, match="tokenizer"):
        ENTRY.create_predictor(
            model, PredictorContext("tiny", torch.device("cpu"), "fp32", tmp_path / "none")
        )

"""Backbone reuse, the per-run input size, constant per-frame scores and the predictor's options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mutr_testlib import TEXTS, frames, tiny_model, tiny_tokenizer

from rvos_core.errors import ConfigError, InputError
from rvos_core.runfolder import key_frame_index
from rvos_mutr import MUTRPredictor
from rvos_mutr.entry import ENTRY
from rvos_nn.hooks import ForwardRecorder
from rvos_nn.predictor import PredictorContext
from rvos_nn.preprocess import preprocess_frames
from rvos_nn.testing import pretrained_folder

CPU = torch.device("cpu")
SHORT = 32  # a small model input keeps the tests fast


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def test_backbone_reuse_equals_one_forward_per_expression(model, tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer(tmp_path)
    video = preprocess_frames(frames(5, (36, 48)), SHORT)
    size = torch.tensor(video.shape[-2:])
    with torch.no_grad():
        features = model.encode_video(video)
        reused, separate = [], []
        for text in TEXTS[:2]:
            tokens = tokenizer([text])
            words = model.encode_text(tokens.input_ids, tokens.attention_mask)
            reused.append(model.decode(features, words, size))
            separate.append(model(video, tokens.input_ids, tokens.attention_mask, size))
    for a, b in zip(reused, separate, strict=True):
        for name in ("pred_logits", "pred_boxes", "pred_masks", "reference_points"):
            assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(reused[0].pred_masks, reused[1].pred_masks)  # the texts matter


def test_predictor_with_and_without_reuse(model, tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer(tmp_path)
    video = frames(5, (40, 60))
    texts = TEXTS[:2]
    with torch.no_grad():
        fast = list(MUTRPredictor(model, tokenizer, CPU, short_side=SHORT).predict(video, texts))
        slow = list(
            MUTRPredictor(model, tokenizer, CPU, short_side=SHORT, reuse_backbone=False).predict(
                video, texts
            )
        )
    assert len(fast) == len(texts)
    for a, b in zip(fast, slow, strict=True):
        assert a.probs.shape == (5, 40, 60) and a.probs.dtype == np.float32
        assert a.scores.shape == (5,)
        assert np.array_equal(a.probs, b.probs) and np.array_equal(a.scores, b.scores)


def test_scores_are_constant_over_time_so_the_key_frame_is_the_first(model, tmp_path) -> None:
    tokenizer = tiny_tokenizer(tmp_path)
    with torch.no_grad():
        predictions = list(
            MUTRPredictor(model, tokenizer, CPU, short_side=SHORT).predict(
                frames(6, (36, 52)), TEXTS[:2]
            )
        )
    for prediction in predictions:
        assert np.all(prediction.scores == prediction.scores[0])
        assert key_frame_index(prediction.scores.tolist()) == 0


def test_short_side_sets_the_model_input(model, tmp_path: Path) -> None:
    tokenizer = tiny_tokenizer(tmp_path)
    video = frames(3, (40, 60))
    results = {}
    for short in (SHORT, 48):
        predictor = MUTRPredictor(model, tokenizer, CPU, short_side=short)
        with ForwardRecorder(model, ["backbone"]) as recorder, torch.no_grad():
            (results[short],) = predictor.predict(video, TEXTS[:1])
        # 40x60 -> short side `short`, long side int(short * 60 / 40); stride-4 first stage
        first = recorder.calls["backbone"][0].features[0]
        assert tuple(first.shape[-2:]) == (short // 4, int(short * 60 / 40) // 4)
    assert results[SHORT].probs.shape == results[48].probs.shape == (3, 40, 60)
    assert not np.array_equal(results[SHORT].probs, results[48].probs)


@pytest.mark.parametrize("count", [1, 2, 4])
def test_short_videos_pad_time_to_the_window(model, tmp_path: Path, count: int) -> None:
    tokenizer = tiny_tokenizer(tmp_path)
    with torch.no_grad():
        (prediction,) = MUTRPredictor(model, tokenizer, CPU, short_side=SHORT).predict(
            frames(count, (32, 40)), TEXTS[:1]
        )
    assert prediction.probs.shape == (count, 32, 40)
    assert np.isfinite(prediction.probs).all() and np.isfinite(prediction.scores).all()


def test_a_video_without_frames_is_an_input_error(model, tmp_path: Path) -> None:
    predictor = MUTRPredictor(model, tiny_tokenizer(tmp_path), CPU)
    with pytest.raises(InputError, match="without frames"):
        list(predictor.predict([], TEXTS[:1]))


def test_an_expression_too_long_for_the_text_encoder(model, tmp_path: Path) -> None:
    predictor = MUTRPredictor(model, tiny_tokenizer(tmp_path), CPU, short_side=SHORT)
    too_long = " ".join(["the black dog"] * model.config.text.max_tokens)
    with pytest.raises(InputError, match="tokens; the roberta text encoder takes at most"):
        list(predictor.predict(frames(2, (32, 40)), [too_long]))


def test_create_predictor_options(model, tmp_path: Path) -> None:
    root = pretrained_folder(tmp_path)

    def context(**options: str) -> PredictorContext:
        return PredictorContext("tiny", CPU, "fp32", root, options)

    assert ENTRY.create_predictor(model, context()).short_side == model.config.resize_short
    predictor = ENTRY.create_predictor(model, context(short_side="432", reuse_backbone="false"))
    assert predictor.short_side == 432 and not predictor.reuse_backbone
    with pytest.raises(ConfigError, match="short_side='360px'"):
        ENTRY.create_predictor(model, context(short_side="360px"))
    with pytest.raises(ConfigError, match="short_side='8'"):
        ENTRY.create_predictor(model, context(short_side="8"))
    with pytest.raises(ConfigError, match="reuse_backbone"):
        ENTRY.create_predictor(model, context(reuse_backbone="maybe"))
    with pytest.raises(ConfigError, match="tokenizer"):
        ENTRY.create_predictor(model, PredictorContext("tiny", CPU, "fp32", tmp_path / "none"))

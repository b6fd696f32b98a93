"""Comparisons shared by the parity handlers of the Video-Swin RVOS model fixtures.

The ``referformer`` and ``mutr`` fixtures (``$RVOS_PARITY_DIR/<name>/``, see their READMEs)
share a layout: ``inputs.pt`` (uint8 frames, preprocessed frames, caption, token ids),
``outputs.pt``, ``intermediates.pt`` (forward-hook outputs of named sub-modules) and
``postprocess.pt`` (the one-query post-processing of the competition scripts); ``soc`` uses the
weight and predictor checks too. Tolerances are those READMEs'.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from PIL import Image
from torch import Tensor, nn

from rvos_core.runfolder import key_frame_index
from rvos_nn.checkpoint import CheckpointRules, load_state_dict_strict
from rvos_nn.language_query import LanguageQueryConfig
from rvos_nn.parity import ParityCheck
from rvos_nn.postprocess import VideoPrediction, postprocess
from rvos_nn.text import ROBERTA_TOKENIZER, Tokenizer, load_tokenizer_folder

INTERMEDIATE = {"rtol": 1e-4, "atol": 1e-5}
MASKS = {"rtol": 1e-4, "atol": 1e-3}
SCORES = {"rtol": 0.0, "atol": 1e-5}
MASK_MARGIN = 1e-3
"""Binary masks are compared where |mask logit| >= this (the READMEs' robustness note)."""

TOKENIZER_FIXTURE = "text_tokenizer"

ConfigT = TypeVar("ConfigT", bound=LanguageQueryConfig)
ModelT = TypeVar("ModelT", bound=nn.Module)


def language_query_config(cls: type[ConfigT], fixture: Path) -> ConfigT:
    """The model configuration of a referformer / mutr fixture: config.json's ``build`` section
    (upstream argument names, backbone and RoBERTa values, constructor overrides) with the
    fixture's input short side."""
    config = json.loads((fixture / "config.json").read_text())
    build_section = config["build"]
    values = cls.from_upstream(
        build_section["model_args"],
        video_swin=build_section["video_swin"],
        text=build_section["roberta_config"],
        overrides=build_section.get("constructor_overrides"),
    )
    return values.replace(resize_short=config["input"]["preprocess"]["resize_short"])


def load_fixture_weights(
    model: ModelT, fixture: Path, rules: CheckpointRules | None = None
) -> ModelT:
    """``model`` with the fixture's ``state_dict.pt`` strictly loaded, in eval mode."""
    path = fixture / "state_dict.pt"
    load_state_dict_strict(model, torch.load(path, weights_only=True), rules, source=str(path))
    return model.eval()


def check_heads(check: ParityCheck, out: Any, expected: Mapping[str, Any]) -> None:
    """The last layer's pred_logits, pred_boxes, pred_masks [1, T, Q, ...] and the
    reference_points of a referformer / mutr forward."""
    check.close("pred_logits", out.pred_logits, expected["pred_logits"], **INTERMEDIATE)
    check.close("pred_boxes", out.pred_boxes, expected["pred_boxes"], **INTERMEDIATE)
    check.close("pred_masks", out.pred_masks, expected["pred_masks"], **MASKS)
    check.close(
        "reference_points", out.reference_points, expected["reference_points"], **INTERMEDIATE
    )


def check_predictor(
    check: ParityCheck,
    predictor_cls: Callable[[Any, Tokenizer, torch.device], Any],
    model: nn.Module,
    fixture: Path,
    inputs: Mapping[str, Any],
    expected: Mapping[str, Any],
) -> None:
    """The model's predictor (``predictor_cls(model, tokenizer, cpu)``) end to end: tokenizer
    call, preprocessing, forward, post-processing, against the competition script's probabilities
    and scores; skipped without the sibling ``text_tokenizer`` fixture."""
    max_tokens = model.config.text.max_tokens
    tokenizer = fixture_tokenizer(fixture, max_tokens)
    if tokenizer is None:
        return
    check_tokens(check, tokenizer, inputs)
    predictor = predictor_cls(model, tokenizer, torch.device("cpu"))
    (prediction,) = predictor.predict(fixture_frames(inputs), [inputs["caption"]])
    check.close("predictor.probs", prediction.probs, expected["mask_logits"].sigmoid(), **MASKS)
    check.close("predictor.scores", prediction.scores, expected["class_info_tensor"], **SCORES)


def fixture_frames(inputs: Mapping[str, Any]) -> list[Image.Image]:
    """The original uint8 frames [T, H0, W0, 3] of ``inputs.pt`` as PIL images."""
    return [Image.fromarray(frame.numpy()) for frame in inputs["frames_uint8"]]


def check_calls(
    check: ParityCheck, name: str, ours: Sequence[Any], theirs: Sequence[Any], **tolerance: float
) -> None:
    """The number of calls of a sub-module, then each call's output."""
    check.equal(f"{name} (calls)", len(ours), len(theirs))
    for i, (a, b) in enumerate(zip(ours, theirs, strict=False)):
        check.close(f"{name}[{i}]", a, b, **tolerance)


def check_shared_intermediates(
    check: ParityCheck, calls: Mapping[str, list[Any]], expected: Mapping[str, Any]
) -> None:
    """Sub-modules the models share: ``text_encoder``, ``resizer``, ``fusion_module``,
    ``backbone``, ``transformer``, ``pixel_decoder`` (each recorded by a ForwardRecorder)."""
    text = calls["text_encoder"][0]
    for key in ("last_hidden_state", "pooler_output"):
        check.close(
            f"text_encoder.{key}", getattr(text, key), expected["text_encoder"][key], **INTERMEDIATE
        )
    for name in ("resizer", "fusion_module"):
        check_calls(check, name, calls[name], expected[name], **INTERMEDIATE)
    features = calls["backbone"][0].features
    for i, theirs in enumerate(expected["backbone"]["features"]):
        check.close(f"backbone.features[{i}]", features[i], theirs, **INTERMEDIATE)
    transformer = calls["transformer"][0]
    for key in ("hs", "init_reference", "inter_references"):
        check.close(
            f"transformer.{key}",
            getattr(transformer, key),
            expected["transformer"][key],
            **INTERMEDIATE,
        )
    for i, theirs in enumerate(expected["transformer"]["memory"]):
        check.close(f"transformer.memory[{i}]", transformer.memory[i], theirs, **INTERMEDIATE)
    check.close(
        "pixel_decoder", calls["pixel_decoder"][0], expected["pixel_decoder"], **INTERMEDIATE
    )


def check_postprocess(
    check: ParityCheck, pred_logits: Tensor, pred_masks: Tensor, expected: Mapping[str, Any]
) -> VideoPrediction:
    """The competition post-processing of pred_logits [T, Q, K], pred_masks [T, Q, h, w]
    against ``postprocess.pt``."""
    size = tuple(int(v) for v in expected["original_size"])
    result = postprocess(pred_logits, pred_masks, size)
    check.equal("query_index", result.query_index, expected["query_index"])
    check.close("scores_per_query", result.scores_per_query, expected["scores_per_query"], **SCORES)
    check.close("class_info", result.class_info, expected["class_info_tensor"], **SCORES)
    check.equal(
        "key_frame_index", key_frame_index(result.class_info.tolist()), expected["key_frame_index"]
    )
    check.close("mask_logits", result.mask_logits, expected["mask_logits"], **MASKS)
    sure = expected["mask_logits"].abs() >= MASK_MARGIN
    check.equal("masks (|logit| >= 1e-3)", (result.probs > 0.5)[sure], expected["masks"][sure])
    return result


def fixture_tokenizer(fixture: Path, max_tokens: int | None) -> Tokenizer | None:
    """The sibling ``text_tokenizer`` fixture's tokenizer (RoBERTa layout), None when absent."""
    folder = fixture.parent / TOKENIZER_FIXTURE
    if not folder.is_dir():
        return None
    return load_tokenizer_folder(folder, ROBERTA_TOKENIZER, max_tokens)


def check_tokens(check: ParityCheck, tokenizer: Tokenizer, inputs: Mapping[str, Any]) -> None:
    """Our tokenizer call on the caption gives the fixture's ids and attention mask."""
    tokens = tokenizer([inputs["caption"]])
    check.equal("tokenizer.input_ids", tokens.input_ids, inputs["input_ids"])
    check.equal("tokenizer.attention_mask", tokens.attention_mask, inputs["attention_mask"])

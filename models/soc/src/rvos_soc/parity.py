"""Parity handler of the ``soc`` fixture (``python -m rvos_nn.parity``; unit tests).

Builds the model from the fixture's config.json (upstream names), strict-loads its state dict, and
compares with upstream: the DETR-resize preprocessing of the uint8 frames, the tokenizer call (when
the sibling ``text_tokenizer`` fixture is present), the forward outputs, the captured
intermediates, the competition post-processing and the predictor end to end. Tolerances are the
fixture README's. Upstream computes the heads of decoder layers 1..L-1 and ``lvf`` on every
backbone level and discards them in eval; here they are not computed, so only the used ones
(controller call of layer 0, ``lvf`` of the last backbone level) are compared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from rvos_core.errors import ConfigError
from rvos_nn.hooks import ForwardRecorder
from rvos_nn.parity import ParityCheck
from rvos_nn.parity_checks import (
    INTERMEDIATE,
    MASKS,
    check_calls,
    check_postprocess,
    check_predictor,
    fixture_frames,
    load_fixture_weights,
)
from rvos_nn.preprocess import preprocess_frames
from rvos_soc.config import SOCConfig
from rvos_soc.model import SOC, SOCOutput, build
from rvos_soc.predictor import SOCPredictor
from rvos_soc.weights import CHECKPOINT_RULES

RECORDED = (
    "backbone",
    "text_encoder",
    "txt_proj",
    "vlf",
    "lvf",
    "transformer",
    "vita",
    "spatial_decoder",
    "controller",
)


def fixture_config(fixture: Path) -> SOCConfig:
    """The model configuration of a soc fixture (config.json, upstream names) with the fixture's
    resize sizes."""
    config = json.loads((fixture / "config.json").read_text())
    build_section = config["build"]
    preprocess = config["input"]["preprocess"]
    if len(preprocess["sizes"]) != 1:
        raise ConfigError(f"{fixture}: RandomResize with several sizes is random; need one")
    return SOCConfig.from_upstream(
        build_section["model_config"],
        video_swin=build_section["video_swin"],
        text=build_section["roberta_config"],
    ).replace(eval_short_size=preprocess["sizes"][0], eval_max_size=preprocess["max_size"])


def fixture_model(fixture: Path) -> SOC:
    """The fixture's model with its weights, in eval mode."""
    return load_fixture_weights(build(fixture_config(fixture)), fixture, CHECKPOINT_RULES)


def _check_outputs(check: ParityCheck, out: SOCOutput, expected: dict[str, Any]) -> None:
    for key in ("pred_is_referred", "pred_boxes", "pred_logit", "text_sentence_feature"):
        check.close(key, getattr(out, key), expected[key], **INTERMEDIATE)
    check.close("pred_masks", out.pred_masks, expected["pred_masks"], **MASKS)
    check.equal("aux_outputs (count)", 0, len(expected["aux_outputs"]))


def _check_intermediates(
    check: ParityCheck, calls: dict[str, list[Any]], expected: dict[str, Any]
) -> None:
    text = calls["text_encoder"][0]
    for key in ("last_hidden_state", "pooler_output"):
        check.close(
            f"text_encoder.{key}", getattr(text, key), expected["text_encoder"][key], **INTERMEDIATE
        )
    words, sentence = calls["txt_proj"]
    check.close("txt_proj[0]", words.transpose(0, 1), expected["txt_proj"][0], **INTERMEDIATE)
    check.close("txt_proj[1]", sentence, expected["txt_proj"][1], **INTERMEDIATE)
    features = calls["backbone"][0].features
    for i, theirs in enumerate(expected["backbone"]["features"]):
        check.close(f"backbone.features[{i}]", features[i], theirs, **INTERMEDIATE)
    check_calls(check, "vlf", calls["vlf"], expected["vlf"], **INTERMEDIATE)
    check.close("lvf[-1]", calls["lvf"][0], expected["lvf"][-1], **INTERMEDIATE)
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
    check.close("vita", calls["vita"][0], expected["vita"][0], **INTERMEDIATE)
    check.close(
        "spatial_decoder", calls["spatial_decoder"][0], expected["spatial_decoder"], **INTERMEDIATE
    )
    check.close(
        "controller[0]", calls["controller"][0], expected["controller"][0][:, 0], **INTERMEDIATE
    )


def soc_parity(fixture: Path, check: ParityCheck) -> None:
    """Run the fixture (see the module docstring) and record every comparison in ``check``."""
    inputs = torch.load(fixture / "inputs.pt", weights_only=True)
    model = fixture_model(fixture)
    config = model.config
    frames = preprocess_frames(fixture_frames(inputs), config.eval_short_size, config.eval_max_size)
    check.close("preprocess.frames", frames, inputs["frames"], rtol=0.0, atol=1e-6)
    with ForwardRecorder(model, RECORDED) as recorder, torch.no_grad():
        out = model(
            inputs["frames"],
            inputs["input_ids"],
            inputs["attention_mask"],
            inputs["size"],
            with_text_feature=True,
        )
    _check_outputs(check, out, torch.load(fixture / "outputs.pt", weights_only=True))
    _check_intermediates(
        check, recorder.calls, torch.load(fixture / "intermediates.pt", weights_only=True)
    )
    expected = torch.load(fixture / "postprocess.pt", weights_only=True)
    check_postprocess(check, out.pred_is_referred[:, 0], out.pred_masks[:, 0], expected)
    with torch.no_grad():
        check_predictor(check, SOCPredictor, model, fixture, inputs, expected)

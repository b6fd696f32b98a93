"""Parity handler of the ``mutr`` fixture (``python -m rvos_nn.parity``; unit tests).

Builds the model from the fixture's config.json (upstream argument names and constructor
overrides), strict-loads its state dict, and compares with upstream (tolerances of the fixture
README, rvos_nn.parity_checks): preprocessing of the uint8 frames, the tokenizer call (when the
sibling ``text_tokenizer`` fixture is present), the forward outputs, the captured intermediates
(shared ones, the four MTA states, the ``mti`` video queries, the controller), the competition
post-processing (per-frame scores exactly constant, key frame 0), and the predictor end to end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rvos_mutr.config import MUTRConfig
from rvos_mutr.model import MUTROutput, build
from rvos_mutr.predictor import MUTRPredictor
from rvos_nn.hooks import ForwardRecorder
from rvos_nn.parity import ParityCheck
from rvos_nn.parity_checks import (
    INTERMEDIATE,
    check_calls,
    check_heads,
    check_postprocess,
    check_predictor,
    check_shared_intermediates,
    fixture_frames,
    language_query_config,
    load_fixture_weights,
)
from rvos_nn.preprocess import preprocess_frames

RECORDED = (
    "backbone",
    "text_encoder",
    "resizer",
    "fusion_module",
    "MTA",
    "transformer",
    "mti",
    "pixel_decoder",
    "controller",
)


def fixture_config(fixture: Path) -> MUTRConfig:
    """The model configuration of the fixture (config.json, upstream names)."""
    return language_query_config(MUTRConfig, fixture)


def _check_outputs(check: ParityCheck, out: MUTROutput, expected: dict[str, Any]) -> None:
    check_heads(check, out, expected)
    # upstream's eval forward returns no auxiliary layers; ours has none
    check.equal("aux_outputs (count)", 0, len(expected["aux_outputs"]))


def _check_mutr_intermediates(
    check: ParityCheck, calls: dict[str, list[Any]], expected: dict[str, Any]
) -> None:
    """MTA states [L, 1, d] per level; mti: ours [B, Q, d] vs upstream [layers, B, Q, d];
    controller: ours once on the video queries [Q, P] vs upstream's per frame [T, Q, P]."""
    check_calls(check, "MTA", calls["MTA"], expected["MTA"], **INTERMEDIATE)
    (video_queries,) = calls["mti"]
    check.close("mti", video_queries[None], expected["mti"], **INTERMEDIATE)
    (params,) = calls["controller"]
    theirs = expected["controller"]
    check.close("controller", params.expand(theirs.shape), theirs, **INTERMEDIATE)


def mutr_parity(fixture: Path, check: ParityCheck) -> None:
    """Run the fixture (see the module docstring) and record every comparison in ``check``."""
    inputs = torch.load(fixture / "inputs.pt", weights_only=True)
    model = load_fixture_weights(build(fixture_config(fixture)), fixture)
    frames = preprocess_frames(fixture_frames(inputs), model.config.resize_short)
    check.close("preprocess.frames", frames, inputs["frames"], rtol=0.0, atol=1e-6)
    with ForwardRecorder(model, RECORDED) as recorder, torch.no_grad():
        out = model(inputs["frames"], inputs["input_ids"], inputs["attention_mask"], inputs["size"])
    _check_outputs(check, out, torch.load(fixture / "outputs.pt", weights_only=True))
    intermediates = torch.load(fixture / "intermediates.pt", weights_only=True)
    check_shared_intermediates(check, recorder.calls, intermediates)
    _check_mutr_intermediates(check, recorder.calls, intermediates)
    expected = torch.load(fixture / "postprocess.pt", weights_only=True)
    result = check_postprocess(check, out.pred_logits[0], out.pred_masks[0], expected)
    # README: the per-frame scores come from one video query, so they are exactly constant
    first = result.class_info[:1].expand_as(result.class_info)
    check.equal("class_info constant over time", result.class_info, first)
    with torch.no_grad():
        check_predictor(check, MUTRPredictor, model, fixture, inputs, expected)

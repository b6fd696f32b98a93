"""Parity handler of the ``referformer`` fixture (``python -m rvos_nn.parity``; unit tests).

Builds the model from the fixture's config.json (upstream argument names), strict-loads its state
dict, and compares with upstream: preprocessing of the uint8 frames, the tokenizer call (when the
sibling ``text_tokenizer`` fixture is present), the forward outputs of every decoder layer, the
captured intermediates, the competition post-processing, and the predictor end to end. Tolerances
are the fixture README's (rvos_nn.parity_checks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rvos_nn.hooks import ForwardRecorder
from rvos_nn.parity import ParityCheck
from rvos_nn.parity_checks import (
    INTERMEDIATE,
    MASKS,
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
from rvos_referformer.config import ReferFormerConfig
from rvos_referformer.model import ReferFormerOutput, build
from rvos_referformer.predictor import ReferFormerPredictor


def fixture_config(fixture: Path) -> ReferFormerConfig:
    """The model configuration of the fixture (config.json, upstream names)."""
    return language_query_config(ReferFormerConfig, fixture)


def _check_outputs(check: ParityCheck, out: ReferFormerOutput, expected: dict[str, Any]) -> None:
    check_heads(check, out, expected)
    check.equal("aux_outputs (count)", len(out.aux_outputs), len(expected["aux_outputs"]))
    for i, (ours, theirs) in enumerate(zip(out.aux_outputs, expected["aux_outputs"], strict=False)):
        for key in ("pred_logits", "pred_boxes"):
            check.close(f"aux_outputs[{i}].{key}", ours[key], theirs[key], **INTERMEDIATE)
        check.close(
            f"aux_outputs[{i}].pred_masks", ours["pred_masks"], theirs["pred_masks"], **MASKS
        )


def referformer_parity(fixture: Path, check: ParityCheck) -> None:
    """Run the fixture (see the module docstring) and record every comparison in ``check``."""
    inputs = torch.load(fixture / "inputs.pt", weights_only=True)
    model = load_fixture_weights(build(fixture_config(fixture)), fixture)
    frames = preprocess_frames(fixture_frames(inputs), model.config.resize_short)
    check.close("preprocess.frames", frames, inputs["frames"], rtol=0.0, atol=1e-6)
    names = [
        "backbone",
        "text_encoder",
        "resizer",
        "fusion_module",
        "transformer",
        "pixel_decoder",
        "controller",
    ]
    recorder = ForwardRecorder(model, names)
    with torch.no_grad():
        out = model(
            inputs["frames"],
            inputs["input_ids"],
            inputs["attention_mask"],
            inputs["size"],
            with_aux=True,
        )
    recorder.remove()
    _check_outputs(check, out, torch.load(fixture / "outputs.pt", weights_only=True))
    intermediates = torch.load(fixture / "intermediates.pt", weights_only=True)
    check_shared_intermediates(check, recorder.calls, intermediates)
    check_calls(
        check,
        "controller",
        recorder.calls["controller"],
        intermediates["controller"],
        **INTERMEDIATE,
    )
    expected = torch.load(fixture / "postprocess.pt", weights_only=True)
    check_postprocess(check, out.pred_logits[0], out.pred_masks[0], expected)
    with torch.no_grad():
        check_predictor(check, ReferFormerPredictor, model, fixture, inputs, expected)

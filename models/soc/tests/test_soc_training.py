"""SOC's training hooks: the train-mode forward of a batch of clips in the layout of the train_soc
fixture (time-major), per-layer video queries, clips that do not interact, gradients to every
parameter, jointtrainer.py's parameter groups on the full model, and initialisation from
pretrained weights."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from soc_testlib import tiny_model, tiny_tokenizer, training_clips

from rvos_core.testing import parity_dir
from rvos_nn.testing import (
    gradient_by_group,
    pretrained_round_trip,
)
from rvos_nn.text import Tokenizer
from rvos_soc import TINY, build
from rvos_soc.entry import ENTRY

HOOKS = ENTRY.training
LAYER_KEYS = {"pred_masks", "pred_logit", "pred_boxes", "text_sentence_feature", "pred_is_referred"}
WIDTH_KEYS = {"pred_logit", "text_sentence_feature"}  # [..., C]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    return tiny_tokenizer(tmp_path_factory.mktemp("pretrained"))


def _layers(outputs: dict) -> list[dict]:
    return [outputs, *outputs["aux_outputs"]]


def _layout(outputs: dict) -> dict:
    """Shapes (the feature width C left out) and dtypes of every tensor, aux layers included."""
    return {
        (i, key): (tuple(value.shape)[: -1 if key in WIDTH_KEYS else None], value.dtype)
        for i, layer in enumerate(_layers(outputs))
        for key, value in layer.items()
        if key != "aux_outputs"
    }


def test_hooks_declare_the_soc_criterion() -> None:
    assert HOOKS is not None and HOOKS.criterion == "soc"


@pytest.mark.parity
@pytest.mark.parametrize("case", ["case_b2", "case_b1"])
def test_training_output_has_the_fixture_layout(tokenizer: Tokenizer, case: str) -> None:
    """The fixture's B, T, clip sizes, Q and decoder layers give its output shapes and dtypes
    (padding to the largest size, no rounding; masks at ceil(size / 4); time-major), except the
    feature width C of ``pred_logit`` / ``text_sentence_feature``: the fixture's 16 is below the
    smallest SOC width (128), so ours is d_model."""
    data = torch.load(parity_dir("train_soc") / f"{case}.pt", weights_only=True)
    meta = data["meta"]
    q, layers = meta["Q"], meta["L"]
    config = TINY.replace(
        transformer=dataclasses.replace(TINY.transformer, num_queries=q, dec_layers=layers),
        vita=dataclasses.replace(TINY.vita, num_frame_queries=q, num_queries=q),
    )
    torch.manual_seed(0)
    model = build(config).train()
    clips = training_clips([tuple(size) for size in meta["frame_sizes"]], length=meta["T"])
    outputs = HOOKS.forward(model, tokenizer, clips)
    assert _layout(outputs) == _layout(data["outputs"])
    for layer in _layers(outputs):
        assert {layer[key].shape[-1] for key in WIDTH_KEYS} == {config.transformer.d_model}


def test_two_clips_of_different_sizes(tokenizer: Tokenizer) -> None:
    model = tiny_model().train()
    outputs = HOOKS.forward(model, tokenizer, training_clips([(50, 70), (64, 99)]))
    t, b, q, c = 3, 2, TINY.transformer.num_queries, TINY.transformer.d_model
    assert len(outputs["aux_outputs"]) == TINY.transformer.dec_layers - 1
    for layer in _layers(outputs):
        assert set(layer) - {"aux_outputs"} == LAYER_KEYS
        assert layer["pred_masks"].shape == (t, b, q, 16, 25)  # padded to 64 x 99: ceil / 4
        assert layer["pred_boxes"].shape == (t, b, q, 4)
        assert layer["pred_is_referred"].shape == (t, b, q, 1)
        assert layer["pred_logit"].shape == (b, q, c)
        assert layer["text_sentence_feature"].shape == (b, c)
        assert all(layer[key].dtype == torch.float32 for key in LAYER_KEYS)
        # one text feature for every layer, as upstream's
        assert layer["text_sentence_feature"] is outputs["text_sentence_feature"]
    assert not torch.allclose(outputs["aux_outputs"][0]["pred_logit"], outputs["pred_logit"])


def test_clips_of_a_batch_do_not_interact(tokenizer: Tokenizer) -> None:
    """Eval mode (no dropout). SOC pads a batch to its largest size without rounding, so a smaller
    clip alone is not padded and (the backbone and GroupNorm seeing the zero padding, as upstream)
    its values differ; what upstream's semantics do fix: clip 0 (50 x 70) gives bit-identical
    outputs whatever the content of the other clip of its batch (same size and caption), and
    clip 1 (64 x 96, the largest: unpadded in the batch) equals itself run alone, within 1e-5 of
    the largest value (its caption is padded to clip 0's longer one in the batch)."""
    model = tiny_model()
    clips = training_clips([(50, 70), (64, 96)])
    other = dataclasses.replace(clips[1], frames=torch.randn_like(clips[1].frames))
    with torch.no_grad():
        batch = HOOKS.forward(model, tokenizer, clips)
        changed = HOOKS.forward(model, tokenizer, [clips[0], other])
        alone = HOOKS.forward(model, tokenizer, [clips[1]])
    for ours, theirs, own in zip(_layers(batch), _layers(changed), _layers(alone), strict=True):
        for key in LAYER_KEYS:
            axis = 0 if key in WIDTH_KEYS else 1
            first, second = ours[key].unbind(axis), theirs[key].unbind(axis)
            assert torch.equal(first[0], second[0]), key
            assert not torch.allclose(first[1], second[1]), key
            atol = 1e-5 * float(own[key].abs().max())
            torch.testing.assert_close(ours[key].narrow(axis, 1, 1), own[key], atol=atol, rtol=0)


def test_gradients_reach_every_parameter(tokenizer: Tokenizer) -> None:
    model = tiny_model().train()
    outputs = HOOKS.forward(model, tokenizer, training_clips([(50, 70), (64, 99)]))
    missing, totals = gradient_by_group(model, outputs, LAYER_KEYS, HOOKS.param_group)
    assert missing == []
    assert set(totals) == {"backbone", "text_encoder", "rest"}
    assert all(total > 0 for total in totals.values()), totals


def test_parameter_groups_of_the_full_model_are_upstreams() -> None:
    """jointtrainer.py's three predicates, as written there: each parameter is in exactly one
    group, the one ``param_group`` names ("linear_proj" never: SOC has no such group)."""
    with torch.device("meta"):
        model = ENTRY.build("full")
    names = [name for name, _ in model.named_parameters()]
    for n in names:
        upstream = {
            "rest": ("backbone" not in n and "text_encoder" not in n) or "VLA" in n,
            "backbone": "backbone" in n and "VLA" not in n,
            "text_encoder": "text_encoder" in n,
        }
        assert [g for g, member in upstream.items() if member] == [HOOKS.param_group(n)], n
    assert HOOKS.param_group("transformer.reference_points.weight") == "rest"
    assert HOOKS.param_group("transformer.encoder.layers.0.self_attn.sampling_offsets.bias") == (
        "rest"
    )
    assert sum(HOOKS.param_group(n) == "backbone" for n in names) == sum(
        n.startswith("backbone.0.body.") for n in names
    )


def test_initialisation_for_training_from_scratch(tmp_path: Path) -> None:
    """Upstream's init of the other modules (this model's own ones named), then the backbone
    and the text encoder from a fake Kinetics checkpoint and roberta-base folder."""
    filled = pretrained_round_trip(tiny_model(seed=1), ENTRY.build("tiny"), tmp_path)
    expected = {
        f"spatial_decoder.{name}"
        for name in (
            "lay1",
            "lay2",
            "lay3",
            "lay4",
            "lay5",
            "adapter1",
            "adapter2",
            "adapter3",
            "out_lay",
        )
    }
    expected |= {f"vita.{part}.0" for part in ("enc_self_attn", "enc_ffn")}
    expected |= {
        f"vita.transformer_{kind}.{i}"
        for i in range(2)
        for kind in ("self_attention_layers", "cross_attention_layers", "ffn_layers")
    }
    assert expected | {"class_embed", "bbox_embed", "input_proj", "controller"} <= filled

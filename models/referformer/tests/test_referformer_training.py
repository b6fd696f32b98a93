"""ReferFormer's training hooks: the train-mode forward of a batch of clips in the layout of the
train_referformer fixture, clips that do not interact, gradients to every parameter, upstream's
parameter groups on the full model, and initialisation from pretrained weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from referformer_testlib import tiny_model, tiny_tokenizer, training_clips

from rvos_core.testing import parity_dir
from rvos_nn.testing import (
    assert_language_query_groups,
    gradient_by_group,
    pretrained_round_trip,
)
from rvos_nn.text import Tokenizer
from rvos_referformer import TINY, build
from rvos_referformer.entry import ENTRY

HOOKS = ENTRY.training
LAYER_KEYS = {"pred_logits", "pred_boxes", "pred_masks"}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    return tiny_tokenizer(tmp_path_factory.mktemp("pretrained"))


def _layout(outputs: dict) -> dict:
    """Shapes and dtypes of every tensor of a training output, aux layers included."""
    layers = [outputs, *outputs["aux_outputs"]]
    return {
        (i, key): (tuple(value.shape), value.dtype)
        for i, layer in enumerate(layers)
        for key, value in layer.items()
        if key != "aux_outputs"
    }


def test_hooks_declare_the_referformer_criterion() -> None:
    assert HOOKS is not None and HOOKS.criterion == "referformer"


@pytest.mark.parity
@pytest.mark.parametrize("case", ["case_b2", "case_b1"])
def test_training_output_has_the_fixture_layout(tokenizer: Tokenizer, case: str) -> None:
    """The fixture's B, T, clip sizes, Q and decoder layers give exactly its output shapes and
    dtypes (padding to a multiple of 32, masks at a quarter of it, L - 1 aux layers)."""
    data = torch.load(parity_dir("train_referformer") / f"{case}.pt", weights_only=True)
    meta = data["meta"]
    torch.manual_seed(0)
    model = build(TINY.replace(num_queries=meta["Q"], dec_layers=meta["L"])).train()
    clips = training_clips([tuple(size) for size in meta["frame_sizes"]], length=meta["T"])
    outputs = HOOKS.forward(model, tokenizer, clips)
    assert _layout(outputs) == _layout(data["outputs"])


def test_two_clips_of_different_sizes(tokenizer: Tokenizer) -> None:
    model = tiny_model().train()
    outputs = HOOKS.forward(model, tokenizer, training_clips([(50, 70), (64, 100)]))
    b, t, q = 2, 3, TINY.num_queries
    assert set(outputs) == LAYER_KEYS | {"aux_outputs"}
    assert len(outputs["aux_outputs"]) == TINY.dec_layers - 1
    for layer in [outputs, *outputs["aux_outputs"]]:
        assert set(layer) - {"aux_outputs"} == LAYER_KEYS
        assert layer["pred_logits"].shape == (b, t, q, 1)
        assert layer["pred_boxes"].shape == (b, t, q, 4)
        assert layer["pred_masks"].shape == (b, t, q, 64 // 4, 128 // 4)  # padded to 64 x 128
        assert all(layer[key].dtype == torch.float32 for key in LAYER_KEYS)
        assert ((layer["pred_boxes"] >= 0) & (layer["pred_boxes"] <= 1)).all()


def test_a_clip_in_a_batch_gives_its_outputs_alone(tokenizer: Tokenizer) -> None:
    """Eval mode (no dropout). Clip 0 (50 x 70) pads to 64 x 96 alone and in the batch with
    clip 1 (64 x 96), so upstream's padding semantics give it the same input, mask and size either
    way: every output of each clip (valid region and padding alike) equals the clip run alone.
    Clip 0 has the longest caption: bit-identical; clip 1's caption is padded to it in the batch:
    equal within 1e-5 of the largest value (the padded tokens only change float rounding)."""
    model = tiny_model()
    clips = training_clips([(50, 70), (64, 96)])
    with torch.no_grad():
        batch = HOOKS.forward(model, tokenizer, clips)
        alone = [HOOKS.forward(model, tokenizer, [clip]) for clip in clips]
    for b, (tolerance, own) in enumerate(zip((0.0, 1e-5), alone, strict=True)):
        for ours, theirs in zip(
            [batch, *batch["aux_outputs"]], [own, *own["aux_outputs"]], strict=True
        ):
            for key in LAYER_KEYS:
                atol = tolerance * float(theirs[key].abs().max())
                torch.testing.assert_close(ours[key][b : b + 1], theirs[key], atol=atol, rtol=0)


def test_gradients_reach_every_parameter(tokenizer: Tokenizer) -> None:
    model = tiny_model().train()
    outputs = HOOKS.forward(model, tokenizer, training_clips([(50, 70), (64, 100)]))
    missing, totals = gradient_by_group(model, outputs, LAYER_KEYS, HOOKS.param_group)
    assert not missing
    assert set(totals) == {"backbone", "text_encoder", "linear_proj", "rest"}
    assert all(total > 0 for total in totals.values()), totals


def test_parameter_groups_of_the_full_model_are_upstreams() -> None:
    with torch.device("meta"):
        assert_language_query_groups(ENTRY.build("full"), HOOKS.param_group)


def test_initialisation_for_training_from_scratch(tmp_path: Path) -> None:
    """Upstream's init of the other modules (this model's own ones named), then the backbone
    and the text encoder from a fake Kinetics checkpoint and roberta-base folder."""
    filled = pretrained_round_trip(tiny_model(seed=1), ENTRY.build("tiny"), tmp_path)
    expected = {
        f"pixel_decoder.{kind}_{i}"
        for kind in ("adapter", "layer", "cross_attn")
        for i in range(1, 5)
    } | {"pixel_decoder.mask_features"}
    assert expected | {"class_embed", "bbox_embed", "input_proj", "controller"} <= filled

"""The predictor on the tiny models: shapes, bad input, upstream text handling, options, reuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from uninext_testlib import frames, pretrained_folder, tiny_model

from rvos_core.errors import ConfigError, InputError
from rvos_nn.parity import magnitude_atol
from rvos_nn.predictor import PredictorContext
from rvos_uninext import predictor as predictor_module
from rvos_uninext.entry import VITH
from rvos_uninext.postprocess import mask_probabilities
from rvos_uninext.predictor import UninextPredictor


def _predictor(tmp_path: Path, kind: str = "vit", **options: str) -> UninextPredictor:
    context = PredictorContext(
        variant="tiny",
        device=torch.device("cpu"),
        precision="fp32",
        pretrained=pretrained_folder(tmp_path / "pretrained"),
        options=options,
    )
    return VITH.create_predictor(tiny_model(kind), context)


def _vocab(tmp_path: Path) -> list[str]:
    return (tmp_path / "pretrained" / "bert-base-uncased" / "vocab.txt").read_text().split("\n")


@pytest.mark.parametrize("kind", ["vit", "convnext"])
def test_predictions_have_the_contract_shapes(tmp_path, kind):
    predictor = _predictor(tmp_path, kind)
    video = frames(2, size=(30, 45))
    results = list(predictor.predict(video, ["a red disc", "the left part"]))
    assert len(results) == 2
    for result in results:
        assert result.probs.shape == (2, 30, 45) and result.probs.dtype == np.float32
        assert result.scores.shape == (2,) and result.scores.dtype == np.float64
        assert result.probs.min() >= 0.0 and result.probs.max() <= 1.0
        assert np.all((result.scores > 0) & (result.scores < 1))


def test_one_frame_video(tmp_path):
    result = next(iter(_predictor(tmp_path).predict(frames(1, size=(33, 20)), ["one frame"])))
    assert result.probs.shape == (1, 33, 20) and result.scores.shape == (1,)


def test_empty_frame_list_and_mixed_sizes_are_input_errors(tmp_path):
    predictor = _predictor(tmp_path)
    with pytest.raises(InputError, match="without frames"):
        list(predictor.predict([], ["x"]))
    mixed = [*frames(1, size=(30, 40)), *frames(1, size=(31, 40))]
    with pytest.raises(InputError, match="frame 1 is 40x31"):
        list(predictor.predict(mixed, ["x"]))


def test_missing_tokenizer_folder_names_the_folder(tmp_path):
    context = PredictorContext(
        variant="tiny", device=torch.device("cpu"), precision="fp32", pretrained=tmp_path / "none"
    )
    with pytest.raises(ConfigError, match="bert-base-uncased") as caught:
        VITH.create_predictor(tiny_model(), context)
    assert "PRETRAINED" in str(caught.value) and "vocab.txt" in str(caught.value)


def test_empty_expression_is_cls_sep_and_padding(tmp_path):
    """Upstream tokenizes the cleaned empty string: [CLS] [SEP], then [PAD] up to MAX_QUERY_LEN."""
    predictor = _predictor(tmp_path)
    vocab = _vocab(tmp_path)
    tokens = predictor.tokenize("")
    length = predictor.model.config.max_query_len
    assert tokens.input_ids.tolist() == [
        [vocab.index("[CLS]"), vocab.index("[SEP]")] + [vocab.index("[PAD]")] * (length - 2)
    ]
    assert tokens.attention_mask.tolist() == [[1, 1] + [0] * (length - 2)]
    result = next(iter(predictor.predict(frames(2), [""])))
    assert np.isfinite(result.probs).all() and np.isfinite(result.scores).all()


def test_too_long_expression_is_truncated_as_upstream(tmp_path):
    """max_length=MAX_QUERY_LEN, truncation=True: the sequence is cut and still ends in [SEP]."""
    predictor = _predictor(tmp_path)
    vocab = _vocab(tmp_path)
    text = "a very long expression " * 20
    tokens = predictor.tokenize(text)
    length = predictor.model.config.max_query_len
    assert tokens.input_ids.shape == (1, length) and int(tokens.attention_mask.sum()) == length
    ids = tokens.input_ids[0].tolist()
    assert ids[0] == vocab.index("[CLS]") and ids[-1] == vocab.index("[SEP]")
    assert ids[1] == vocab.index("a") and ids[2] == vocab.index("v")
    result = next(iter(predictor.predict(frames(2), [text])))
    assert result.probs.shape[0] == 2


def test_expression_is_cleaned_before_tokenizing(tmp_path):
    predictor = _predictor(tmp_path)
    assert torch.equal(
        predictor.tokenize("A-B, (c)!").input_ids, predictor.tokenize("a b c").input_ids
    )


def test_backbone_reuse_gives_identical_results(tmp_path):
    video, texts = frames(2), ["a disc", "the ramp"]
    reused = list(_predictor(tmp_path).predict(video, texts))
    again = list(_predictor(tmp_path, reuse_backbone="false").predict(video, texts))
    for a, b in zip(reused, again, strict=True):
        assert np.array_equal(a.probs, b.probs) and np.array_equal(a.scores, b.scores)


def test_frame_batches_change_rounding_only(tmp_path, monkeypatch):
    """Batched frames round every layer from the backbone on differently. The chosen queries' mask
    logits are sums of large terms that cancel (~1e6 in the tiny random model, so every
    probability is saturated and says nothing): compare the logits, scaled to their magnitude.
    Inputs to the dynamic convolution off by ~1e-6 (float32 through the network), its three
    products and terms about twice the logits give ~1e-5 of the magnitude; 1e-4 leaves a margin
    and is still far below what a mixed-up frame or query changes (the whole magnitude)."""
    logits = []

    def record(chosen: torch.Tensor, *sizes):
        logits.append(chosen.clone())
        return mask_probabilities(chosen, *sizes)

    monkeypatch.setattr(predictor_module, "mask_probabilities", record)
    video, texts = frames(3), ["a disc"]
    single = next(iter(_predictor(tmp_path).predict(video, texts)))
    batched = next(iter(_predictor(tmp_path, frame_batch="3").predict(video, texts)))
    assert np.allclose(single.scores, batched.scores, atol=1e-5)
    one_by_one, together = torch.cat(logits[:3]), logits[3]
    assert len(logits) == 4
    torch.testing.assert_close(
        together, one_by_one, atol=magnitude_atol(one_by_one, 1e-4), rtol=1e-5
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"frame_batch": "0"}, "frame_batch"),
        ({"frame_batch": "two"}, "not an integer"),
        ({"reuse_backbone": "maybe"}, "true or false"),
    ],
)
def test_bad_options_are_config_errors(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        _predictor(tmp_path, **options)


def _run(predictor: UninextPredictor, device: torch.device, precision: str):
    from rvos_nn.precision import inference_context

    with inference_context(device, precision):
        return next(iter(predictor.predict(frames(2, size=(30, 45)), ["a red disc"])))


def test_bf16_autocast_runs_with_a_float32_transformer(tmp_path):
    """Under autocast the backbone and BERT run in bf16; the outputs stay float32 and finite."""
    predictor = _predictor(tmp_path, "convnext")
    result = _run(predictor, torch.device("cpu"), "bf16")
    assert result.probs.dtype == np.float32 and np.isfinite(result.probs).all()
    assert result.probs.min() >= 0.0 and result.probs.max() <= 1.0
    assert np.isfinite(result.scores).all()


@pytest.mark.gpu
def test_cuda_matches_cpu(tmp_path):
    """Same model on CUDA (cuDNN may use TF32 convolutions: a looser bound than CPU-to-CPU)."""
    cpu = _run(_predictor(tmp_path, "vit"), torch.device("cpu"), "fp32")
    predictor = _predictor(tmp_path, "vit")
    predictor.model.to("cuda")
    predictor.device = torch.device("cuda")
    gpu = _run(predictor, torch.device("cuda"), "fp32")
    assert np.allclose(cpu.scores, gpu.scores, atol=1e-3)
    assert np.mean(np.abs(cpu.probs - gpu.probs) > 0.5) < 1e-2

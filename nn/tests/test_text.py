from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from rvos_core.errors import ConfigError, InputError
from rvos_core.testing import parity_dir
from rvos_nn.checkpoint import load_state_dict_strict
from rvos_nn.parity import run_fixture
from rvos_nn.testing import write_tokenizer
from rvos_nn.text import (
    BERT_BASE_UNCASED,
    ROBERTA_BASE,
    ROBERTA_TOKENIZER,
    TEXT_ENCODERS,
    UNINEXT_BERT_TOKENIZER,
    FeatureResizer,
    TextEncoderConfig,
    build_text_encoder,
    load_tokenizer,
    load_tokenizer_folder,
    train_bert_tokenizer,
)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pretrained")
    write_tokenizer(root / "roberta-base", "roberta")
    write_tokenizer(root / "bert-base-uncased", "bert")
    return root


def _numel(config: TextEncoderConfig) -> int:
    with torch.device("meta"):
        model = build_text_encoder(config)
    return sum(p.numel() for p in model.parameters())


def test_full_encoders_have_the_published_sizes() -> None:
    # roberta-base: 124,645,632 parameters with the pooler; bert-base-uncased: 109,482,240.
    assert _numel(ROBERTA_BASE) == 124_645_632
    assert _numel(BERT_BASE_UNCASED) == 109_482_240
    # UNINEXT drops the pooler: one 768x768 linear layer with bias less.
    no_pooler = BERT_BASE_UNCASED.replace(add_pooling_layer=False)
    assert _numel(no_pooler) == 109_482_240 - 768 * 768 - 768


def test_roberta_base_layout() -> None:
    with torch.device("meta"):
        state = build_text_encoder(ROBERTA_BASE).state_dict()
    assert state["embeddings.word_embeddings.weight"].shape == (50265, 768)
    assert state["embeddings.position_embeddings.weight"].shape == (514, 768)
    assert state["embeddings.token_type_embeddings.weight"].shape == (1, 768)
    assert "pooler.dense.weight" in state
    assert "embeddings.position_ids" not in state  # not persistent in transformers 5
    assert ROBERTA_BASE.max_tokens == 512 and BERT_BASE_UNCASED.max_tokens == 512


def test_legacy_position_ids_are_dropped_by_the_named_rule() -> None:
    torch.manual_seed(0)
    source = build_text_encoder(TEXT_ENCODERS["tiny-roberta"])
    state = dict(source.state_dict())
    state["embeddings.position_ids"] = torch.arange(66)[None]
    target = build_text_encoder(TEXT_ENCODERS["tiny-roberta"])
    report = load_state_dict_strict(target, state)
    assert report.ignored == {"legacy-text-buffers": ["embeddings.position_ids"]}


def test_max_tokens_is_the_position_table_limit() -> None:
    config = TEXT_ENCODERS["tiny-roberta"]
    encoder = build_text_encoder(config).eval()
    ids = torch.full((1, config.max_tokens), 5)
    assert encoder(input_ids=ids).last_hidden_state.shape == (1, config.max_tokens, 64)
    with pytest.raises((IndexError, RuntimeError)):
        encoder(input_ids=torch.full((1, config.max_tokens + 1), 5))


@pytest.mark.parity
def test_from_mapping_reads_a_fixture_config() -> None:
    config = json.loads((parity_dir("referformer") / "config.json").read_text())
    values = {k: v for k, v in config["build"]["roberta_config"].items() if " " not in k}
    text = TextEncoderConfig.from_mapping(ROBERTA_BASE, values)
    assert text.hidden_size == values["hidden_size"] and text.vocab_size == values["vocab_size"]
    with pytest.raises(ConfigError, match="unknown text encoder setting"):
        TextEncoderConfig.from_mapping(ROBERTA_BASE, {"hidden": 3})


def test_feature_resizer() -> None:
    torch.manual_seed(0)
    resizer = FeatureResizer(in_features=6, out_features=4).eval()
    assert sorted(resizer.state_dict()) == [
        "fc.bias",
        "fc.weight",
        "layer_norm.bias",
        "layer_norm.weight",
    ]
    x = torch.randn(2, 3, 6)
    by_hand = F.layer_norm(x @ resizer.fc.weight.T + resizer.fc.bias, (4,), eps=1e-12)
    torch.testing.assert_close(resizer(x), by_hand)


def test_missing_tokenizer_names_pretrained_and_the_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_tokenizer(ROBERTA_TOKENIZER, tmp_path, 512)
    message = str(info.value)
    assert "PRETRAINED" in message and str(tmp_path / "roberta-base") in message
    (tmp_path / "roberta-base").mkdir()
    (tmp_path / "roberta-base" / "vocab.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"merges\.txt"):
        load_tokenizer(ROBERTA_TOKENIZER, tmp_path, 512)


def test_roberta_empty_expression_is_bos_eos(pretrained: Path) -> None:
    tokenizer = load_tokenizer(ROBERTA_TOKENIZER, pretrained, 64)
    tokens = tokenizer([""])
    assert tokens.input_ids.tolist() == [[0, 2]]
    assert tokens.attention_mask.tolist() == [[1, 1]] and not tokens.pad_mask.any()


def test_roberta_batch_pads_to_the_longest_with_id_1(pretrained: Path) -> None:
    tokenizer = load_tokenizer(ROBERTA_TOKENIZER, pretrained, 64)
    short, long = "a duck", "the horse running behind the white fence"
    alone = [tokenizer([t]).input_ids[0].tolist() for t in (short, long)]
    batch = tokenizer([short, long])
    width = len(alone[1])
    assert batch.input_ids.shape == (2, width)
    assert batch.input_ids[0].tolist() == alone[0] + [1] * (width - len(alone[0]))
    assert batch.pad_mask[0].tolist() == [False] * len(alone[0]) + [True] * (width - len(alone[0]))


def test_roberta_longer_than_the_encoder_is_an_input_error(pretrained: Path) -> None:
    text = "the man in a blue shirt holding a tennis racket"
    length = len(load_tokenizer(ROBERTA_TOKENIZER, pretrained, None)([text]).input_ids[0])
    assert (
        load_tokenizer(ROBERTA_TOKENIZER, pretrained, length)([text]).input_ids.shape[1] == length
    )
    with pytest.raises(InputError, match=f"has {length} tokens.*at most {length - 1}"):
        load_tokenizer(ROBERTA_TOKENIZER, pretrained, length - 1)([text])


def test_uninext_bert_call_pads_and_truncates_to_max_length(pretrained: Path) -> None:
    tokenizer = load_tokenizer(UNINEXT_BERT_TOKENIZER, pretrained, BERT_BASE_UNCASED.max_tokens)
    vocab = (pretrained / "bert-base-uncased" / "vocab.txt").read_text().split("\n")
    cls_id, sep_id, pad_id = vocab.index("[CLS]"), vocab.index("[SEP]"), vocab.index("[PAD]")
    long = tokenizer(["a red car " * 200])
    assert long.input_ids.shape == (1, 256)
    assert long.input_ids[0, 0] == cls_id and long.input_ids[0, -1] == sep_id
    assert long.attention_mask.sum() == 256
    empty = tokenizer([""])
    assert empty.input_ids[0, :2].tolist() == [cls_id, sep_id]
    assert (empty.input_ids[0, 2:] == pad_id).all() and empty.attention_mask.sum() == 2
    assert torch.equal(tokenizer(["A Red Car"]).input_ids, tokenizer(["a red car"]).input_ids)


def test_tokenizer_folder_is_read_locally(tmp_path: Path) -> None:
    folder = write_tokenizer(tmp_path / "tok", "roberta")
    tokenizer = load_tokenizer_folder(folder, ROBERTA_TOKENIZER, None)
    assert tokenizer(["a red car"]).input_ids[0, 0] == 0


@pytest.mark.parity
def test_text_tokenizer_fixture() -> None:
    check = run_fixture(parity_dir("text_tokenizer"))
    assert check.ok, check.format()
    expected = json.loads((parity_dir("text_tokenizer") / "expected.json").read_text())
    # every sentence: ids, mask, tokens; the batch: ids, mask, pad mask, ids from the json
    assert len(check.comparisons) == 3 * len(expected["single_caption_calls"]) + 4


def test_the_tiny_bert_vocabulary_is_the_same_for_the_same_texts(tmp_path: Path) -> None:
    texts = ["The red square moves left", "the small red circle", "a blue star stops", "Red!"]
    first = train_bert_tokenizer(tmp_path / "first", texts, 48)
    second = train_bert_tokenizer(tmp_path / "second", list(reversed(texts)), 48)
    vocab = (first / "vocab.txt").read_text().split("\n")[:-1]
    assert (second / "vocab.txt").read_bytes() == (first / "vocab.txt").read_bytes()
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and len(vocab) == 48
    assert vocab.index("red") < vocab.index("the")  # most frequent word first ("red": 3)
    tokenizer = load_tokenizer_folder(first, UNINEXT_BERT_TOKENIZER, None)
    assert tokenizer.backend.tokenize("The red star!") == [
        "the",
        "red",
        "s",
        "##t",
        "##a",
        "##r",
        "!",
    ]


def test_a_vocabulary_too_small_for_the_characters_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="characters do not fit"):
        train_bert_tokenizer(tmp_path / "tok", ["abcdefghij"], 20)

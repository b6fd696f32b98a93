"""Helpers for tests of torch code: tiny tokenizers in the upstream file layouts, and the check
that a full-size model has the released checkpoint's key layout (``keys_full.json``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from rvos_core.testing import parity_dir
from rvos_nn.text import (
    ROBERTA_TOKENIZER,
    Tokenizer,
    TokenizerSpec,
    load_tokenizer,
    train_roberta_tokenizer,
)

SAMPLE_TEXTS = (
    "a person riding a skateboard on the left",
    "the black dog jumping over the fence",
    "a red car with a white roof",
    "the second zebra from the right, walking",
    "a duck swimming in the lake",
    "the man in a blue shirt holding a tennis racket",
    "a small brown bird on the branch",
    "the horse running behind the white fence",
)
_BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def write_tokenizer(folder: Path, arch: str, vocab_size: int = 320) -> Path:
    """Write a small tokenizer in the file layout of roberta-base or bert-base-uncased.

    "roberta": byte-level BPE trained on SAMPLE_TEXTS (vocab.json + merges.txt; ids 0-4 are
    <s> <pad> </s> <unk> <mask> as in roberta-base). "bert": a WordPiece vocab.txt of the special
    tokens, characters and continuation characters ([PAD] = 0 as in bert-base-uncased).
    For tests and benchmarks only: ids stay below ``vocab_size`` of any encoder at least this big.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if arch == "roberta":
        train_roberta_tokenizer(folder, SAMPLE_TEXTS, vocab_size)
    elif arch == "bert":
        chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789.,'-!?")
        vocab = [*_BERT_SPECIALS, *chars, *(f"##{c}" for c in chars)][:vocab_size]
        (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    else:
        raise ValueError(f"unknown tokenizer arch {arch!r}")
    return folder


def assert_full_layout(build_full: Callable[[], nn.Module], name: str) -> None:
    """The full-size model (built on the meta device) has exactly the state-dict keys, shapes and
    dtypes of ``$RVOS_PARITY_DIR/<name>/keys_full.json`` (its legacy buffers excepted), and every
    pair the file stores twice is one parameter here."""
    layout = json.loads((parity_dir(name) / "keys_full.json").read_text())
    legacy = set(layout["legacy_buffers"])
    expected = {
        e["key"]: (e["shape"], e["dtype"]) for e in layout["keys"] if e["key"] not in legacy
    }
    with torch.device("meta"):
        model = build_full()
    ours = {
        k: (list(v.shape), str(v.dtype).removeprefix("torch."))
        for k, v in model.state_dict().items()
    }
    missing, unexpected = sorted(set(expected) - set(ours)), sorted(set(ours) - set(expected))
    assert not missing and not unexpected, f"missing {missing[:5]}, unexpected {unexpected[:5]}"
    assert ours == expected
    for first, second in layout["stored_twice"]:
        assert model.get_parameter(first) is model.get_parameter(second), (first, second)


def pretrained_folder(root: Path, spec: TokenizerSpec = ROBERTA_TOKENIZER) -> Path:
    """A PRETRAINED folder ``root`` holding a tiny tokenizer in the file layout ``spec`` reads
    (roberta-base by default)."""
    write_tokenizer(root / spec.folder, spec.arch)
    return root


def tiny_tokenizer(
    root: Path, max_tokens: int | None, spec: TokenizerSpec = ROBERTA_TOKENIZER
) -> Tokenizer:
    """The tiny tokenizer of ``pretrained_folder(root, spec)``, loaded as the models load theirs."""
    return load_tokenizer(spec, pretrained_folder(root, spec), max_tokens)

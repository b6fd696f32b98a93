"""Text front end of the RVOS models: tokenizers, RoBERTa / BERT encoders, FeatureResizer.

Upstream (RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d):
- ReferFormer, MUTR, SOC: ``RobertaTokenizerFast.from_pretrained(roberta folder)`` called as
  ``batch_encode_plus(captions, padding="longest", return_tensors="pt")``: no truncation and no
  maximum length; the model's text padding mask is ``attention_mask != 1``; ``RobertaModel``.
- UNINEXT: ``AutoTokenizer.from_pretrained(bert-base-uncased folder)`` (a BERT WordPiece
  tokenizer) called with ``max_length=256, padding="max_length", truncation=True``;
  ``BertModel(add_pooling_layer=False)``.

Differences from upstream: the encoders are built from explicit configs (a bare ``RobertaConfig()``
is not roberta-base) and their weights come from the model checkpoint, so only the tokenizer files
are read from PRETRAINED, never from the network. An expression longer than a RoBERTa encoder's
position table (512 tokens for roberta-base) makes upstream fail with an index error inside the
embedding; here it is an InputError naming the expression. transformers 5 has no
``batch_encode_plus``; calling the tokenizer with the same arguments gives the same ids
(parity fixture ``text_tokenizer``).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from rvos_core.errors import ConfigError, InputError

if TYPE_CHECKING:
    from rvos_nn.parity import ParityCheck

Arch = Literal["roberta", "bert"]


@dataclass(frozen=True)
class TextEncoderConfig:
    """A RoBERTa or BERT encoder; field names are the transformers config names."""

    arch: Arch
    vocab_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    pad_token_id: int
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    initializer_range: float = 0.02
    add_pooling_layer: bool = True
    attn_implementation: str = "sdpa"

    @property
    def max_tokens(self) -> int:
        """Longest token sequence the position table holds (RoBERTa positions start after pad)."""
        if self.arch == "roberta":
            return self.max_position_embeddings - self.pad_token_id - 1
        return self.max_position_embeddings

    def replace(self, **changes: Any) -> TextEncoderConfig:
        """A copy with some fields changed (e.g. a tiny encoder for tests)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(cls, base: TextEncoderConfig, values: Mapping[str, Any]) -> TextEncoderConfig:
        """``base`` updated with transformers-named ``values`` (e.g. a fixture's roberta_config)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"arch"}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown text encoder setting(s): {', '.join(unknown)}")
        return dataclasses.replace(base, **values)


ROBERTA_BASE = TextEncoderConfig(
    arch="roberta",
    vocab_size=50265,
    max_position_embeddings=514,
    type_vocab_size=1,
    layer_norm_eps=1e-5,
    pad_token_id=1,
    bos_token_id=0,
    eos_token_id=2,
)
BERT_BASE_UNCASED = TextEncoderConfig(
    arch="bert",
    vocab_size=30522,
    max_position_embeddings=512,
    type_vocab_size=2,
    layer_norm_eps=1e-12,
    pad_token_id=0,
)
_TINY = {
    "hidden_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 4,
    "intermediate_size": 128,
}
TEXT_ENCODERS: dict[str, TextEncoderConfig] = {
    "roberta-base": ROBERTA_BASE,
    "bert-base-uncased": BERT_BASE_UNCASED,
    "tiny-roberta": ROBERTA_BASE.replace(vocab_size=320, max_position_embeddings=66, **_TINY),
    "tiny-bert": BERT_BASE_UNCASED.replace(vocab_size=128, max_position_embeddings=64, **_TINY),
}


def build_text_encoder(config: TextEncoderConfig) -> nn.Module:
    """``transformers`` RobertaModel / BertModel with random weights (keys as upstream stores them)."""
    from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel

    values = dataclasses.asdict(config)
    arch, pooling = values.pop("arch"), values.pop("add_pooling_layer")
    if arch == "roberta":
        return RobertaModel(RobertaConfig(**values), add_pooling_layer=pooling)
    return BertModel(BertConfig(**values), add_pooling_layer=pooling)


class FeatureResizer(nn.Module):
    """Linear -> LayerNorm (eps 1e-12) -> Dropout: text features to the model width.

    Keys ``fc.*``, ``layer_norm.*`` as upstream (ReferFormer ``resizer``, SOC ``txt_proj``).
    """

    def __init__(self, *, in_features: int, out_features: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)
        self.layer_norm = nn.LayerNorm(out_features, eps=1e-12)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [..., in_features] -> [..., out_features]."""
        return self.dropout(self.layer_norm(self.fc(x)))


# ---------------------------------------------------------------------------------------------
# Tokenizers


@dataclass(frozen=True)
class TokenizerSpec:
    """Where a model's tokenizer lives under PRETRAINED and how upstream calls it."""

    folder: str
    arch: Arch
    padding: Literal["longest", "max_length"]
    max_length: int | None
    truncation: bool

    @property
    def files(self) -> tuple[str, ...]:
        return ("vocab.json", "merges.txt") if self.arch == "roberta" else ("vocab.txt",)


ROBERTA_TOKENIZER = TokenizerSpec("roberta-base", "roberta", "longest", None, False)
UNINEXT_BERT_TOKENIZER = TokenizerSpec("bert-base-uncased", "bert", "max_length", 256, True)


@dataclass(frozen=True)
class Tokens:
    """A tokenized batch: input_ids, attention_mask int64 [B, L] (1 = token, 0 = padding)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    @property
    def pad_mask(self) -> torch.Tensor:
        """bool [B, L], True on padding (upstream ``attention_mask.ne(1)``)."""
        return self.attention_mask.ne(1)

    def to(self, device: torch.device | str) -> Tokens:
        return Tokens(self.input_ids.to(device), self.attention_mask.to(device))


class Tokenizer:
    """The upstream tokenizer call of one model (see TokenizerSpec).

    Args:
        backend: a transformers tokenizer.
        spec: how to call it.
        max_tokens: the encoder's limit (TextEncoderConfig.max_tokens); a longer sequence is an
            InputError (None: no check).
    """

    def __init__(self, backend: Any, spec: TokenizerSpec, max_tokens: int | None) -> None:
        self.backend, self.spec, self.max_tokens = backend, spec, max_tokens

    def __call__(self, texts: Sequence[str]) -> Tokens:
        """Tokenize ``texts`` verbatim (no lower-casing or stripping beyond the tokenizer's own)."""
        encoded = self.backend(
            list(texts),
            padding=self.spec.padding,
            max_length=self.spec.max_length,
            truncation=self.spec.truncation,
            return_tensors="pt",
        )
        tokens = Tokens(encoded["input_ids"], encoded["attention_mask"])
        self._check_length(texts, tokens)
        return tokens

    def _check_length(self, texts: Sequence[str], tokens: Tokens) -> None:
        if self.max_tokens is None:
            return
        for text, length in zip(texts, tokens.attention_mask.sum(dim=1).tolist(), strict=True):
            if length > self.max_tokens:
                shown = text if len(text) <= 60 else text[:57] + "..."
                raise InputError(
                    None,
                    f"expression {shown!r} has {length} tokens; the {self.spec.arch} text "
                    f"encoder takes at most {self.max_tokens} (upstream does not truncate)",
                )


ROBERTA_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


def train_roberta_tokenizer(folder: Path, texts: Sequence[str], vocab_size: int) -> Path:
    """Write a byte-level BPE tokenizer trained on ``texts`` in roberta-base's file layout
    (vocab.json + merges.txt; ids 0-4 are <s> <pad> </s> <unk> <mask> as in roberta-base), for
    models trained on a small world of their own (tests, the tiny models): every id stays below
    ``vocab_size``."""
    from tokenizers import ByteLevelBPETokenizer

    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        list(texts),
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(ROBERTA_SPECIALS),
        show_progress=False,
    )
    bpe.save_model(str(folder))
    return folder


def train_bert_tokenizer(folder: Path, texts: Sequence[str], vocab_size: int) -> Path:
    """Write a lower-casing WordPiece vocabulary of ``texts`` in bert-base-uncased's file layout
    (vocab.txt; ids 0-4 are [PAD] [UNK] [CLS] [SEP] [MASK]), for the tiny UNINEXT on a small
    world of its own: every id stays below ``vocab_size``.

    Built, not trained, so that the same texts always give the same file (the ``tokenizers``
    WordPiece trainer breaks ties between equally frequent pieces in hash order): the specials,
    every character of the normalised texts (sorted) alone and as a continuation ``##c``, then
    whole words, most frequent first (ties alphabetical), while ids stay below ``vocab_size``;
    a word left out is split into its characters by WordPiece."""
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    normalizer, splitter = BertNormalizer(lowercase=True), BertPreTokenizer()
    counts = Counter(
        word
        for text in texts
        for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text))
    )
    characters = sorted({c for word in counts for c in word})
    vocab = [*BERT_SPECIALS, *characters, *(f"##{c}" for c in characters)]
    if len(vocab) > vocab_size:
        raise ConfigError(f"{len(characters)} characters do not fit a vocabulary of {vocab_size}")
    words = sorted((w for w in counts if len(w) > 1), key=lambda w: (-counts[w], w))
    vocab += words[: vocab_size - len(vocab)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("".join(f"{token}\n" for token in vocab), encoding="utf-8")
    return folder


BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def load_tokenizer_folder(folder: Path, spec: TokenizerSpec, max_tokens: int | None) -> Tokenizer:
    """The tokenizer stored in ``folder`` (local files only); missing files are a ConfigError."""
    from transformers import BertTokenizerFast, RobertaTokenizerFast

    missing = [name for name in spec.files if not (folder / name).is_file()]
    if missing:
        raise ConfigError(f"tokenizer folder {folder} lacks {', '.join(missing)}")
    backend_class = RobertaTokenizerFast if spec.arch == "roberta" else BertTokenizerFast
    backend = backend_class.from_pretrained(str(folder), local_files_only=True)
    return Tokenizer(backend, spec, max_tokens)


def load_tokenizer(spec: TokenizerSpec, pretrained: Path, max_tokens: int | None) -> Tokenizer:
    """The tokenizer of ``spec`` from the PRETRAINED folder of paths.env."""
    folder = Path(pretrained) / spec.folder
    if not all((folder / name).is_file() for name in spec.files):
        raise ConfigError(
            f"the {spec.folder} tokenizer is missing: PRETRAINED = {pretrained} must hold "
            f"{spec.folder}/ with {' and '.join(spec.files)} (set PRETRAINED in paths.env); "
            f"looked in {folder}"
        )
    return load_tokenizer_folder(folder, spec, max_tokens)


# ---------------------------------------------------------------------------------------------
# Parity (fixture ``text_tokenizer``: a RoBERTa-layout tokenizer and upstream's call on it)


def tokenizer_parity(fixture: Path, check: ParityCheck) -> None:
    """Upstream ids and masks for every sentence alone and for the batch call (exact)."""
    expected = json.loads((fixture / "expected.json").read_text())
    tokenizer = load_tokenizer_folder(fixture, ROBERTA_TOKENIZER, max_tokens=None)
    for i, case in enumerate(expected["single_caption_calls"]):
        tokens = tokenizer([case["text"]])
        check.equal(f"single[{i}].input_ids", tokens.input_ids[0], case["input_ids"])
        check.equal(f"single[{i}].attention_mask", tokens.attention_mask[0], case["attention_mask"])
        names = tokenizer.backend.convert_ids_to_tokens(tokens.input_ids[0].tolist())
        check.equal(f"single[{i}].tokens", names, case["tokens"])
    batch = expected["batch_call"]
    tokens = tokenizer(batch["texts"])
    tensors = torch.load(fixture / "expected_batch.pt", weights_only=True)
    check.equal("batch.input_ids", tokens.input_ids, tensors["batch_input_ids"])
    check.equal("batch.attention_mask", tokens.attention_mask, tensors["batch_attention_mask"])
    check.equal("batch.text_pad_mask", tokens.pad_mask, tensors["batch_text_pad_mask"])
    check.equal("batch.input_ids (json)", tokens.input_ids, batch["input_ids"])

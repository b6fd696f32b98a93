"""Helpers for tests of torch code: tiny tokenizers in the upstream file layouts, and the check
that a full-size model has the released checkpoint's key layout (``keys_full.json``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
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
from rvos_nn.training import Clip

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


def gradient_by_group(
    model: nn.Module, outputs: dict, keys: Iterable[str], group_of: Callable[[str], str]
) -> tuple[list[str], dict[str, float]]:
    """Backpropagate the sum of the means of ``keys`` over every decoder layer of a training
    output (``outputs`` and its ``aux_outputs``); returns the parameters that got no gradient and
    the total |gradient| of each learning-rate group (``group_of``: a model's param_group)."""
    layers = [outputs, *outputs["aux_outputs"]]
    sum(layer[key].mean() for layer in layers for key in keys).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    totals: dict[str, float] = {}
    for name, p in model.named_parameters():
        if p.grad is not None:
            group = group_of(name)
            totals[group] = totals.get(group, 0.0) + float(p.grad.abs().sum())
    return missing, totals


def pretrained_round_trip(source: nn.Module, model: nn.Module, folder: Path) -> set[str]:
    """Write ``source``'s backbone as a fake Kinetics checkpoint and its text encoder as a
    roberta-base folder under ``folder``, give ``model`` upstream's initialisation and then load
    both files into it; assert both load strictly and that every backbone and text-encoder tensor
    (the randomly initialised pooler aside) is ``source``'s. Returns the modules
    ``init_like_upstream`` filled."""
    from rvos_nn.pretrained_init import (
        BACKBONE_MODULE,
        ROBERTA_FOLDER,
        init_from_pretrained,
        init_like_upstream,
        write_kinetics_checkpoint,
        write_roberta_folder,
    )

    write_kinetics_checkpoint(source.get_submodule(BACKBONE_MODULE), folder / "kinetics.pth")
    write_roberta_folder(source.get_submodule("text_encoder"), folder / ROBERTA_FOLDER)
    filled = set(init_like_upstream(model))
    report = init_from_pretrained(model, folder, backbone_file="kinetics.pth")
    assert report.backbone.ok and report.text.ok
    loaded = model.state_dict()
    for key, value in source.state_dict().items():
        if key.startswith("backbone.") or (key.startswith("text_encoder.") and "pooler" not in key):
            torch.testing.assert_close(loaded[key], value, atol=1e-6, rtol=0)
    return filled


LANGUAGE_QUERY_KEYWORDS = {
    "backbone": ("backbone.0",),
    "text_encoder": ("text_encoder",),
    "linear_proj": ("reference_points", "sampling_offsets"),
}
"""ReferFormer's and MUTR's ``main.py`` keyword groups (``lr_backbone_names``,
``lr_text_encoder_names``, ``lr_linear_proj_names``), written out from upstream for the tests."""


def assert_language_query_groups(model: nn.Module, group_of: Callable[[str], str]) -> None:
    """No parameter of a full ReferFormer/MUTR ``model`` matches two of upstream's keyword
    groups, each is in the group it matches (or "rest"), and the groups hold what upstream's do:
    the sampling offsets (weight, bias) of 4 encoder + 4 decoder layers and reference_points,
    the whole Video-Swin body, the whole text encoder."""
    counts: dict[str, int] = {}
    for name, _ in model.named_parameters():
        matched = [
            g for g, words in LANGUAGE_QUERY_KEYWORDS.items() if any(w in name for w in words)
        ]
        assert len(matched) <= 1, name
        assert group_of(name) == (matched[0] if matched else "rest"), name
        counts[group_of(name)] = counts.get(group_of(name), 0) + 1
    assert counts["linear_proj"] == 2 * (4 + 4) + 2
    names = [name for name, _ in model.named_parameters()]
    assert counts["backbone"] == sum(n.startswith("backbone.0.body.") for n in names)
    assert counts["text_encoder"] == sum(n.startswith("text_encoder.") for n in names)


def training_clips(
    sizes: Sequence[tuple[int, int]], texts: Sequence[str], length: int = 3, seed: int = 0
) -> list[Clip]:
    """Augmented-clip stand-ins of the given (H, W): normalised random frames [T, 3, H, W] and a
    caption each (``texts`` in turn); the targets are placeholders (a model does not read them)."""
    generator = torch.Generator().manual_seed(seed)
    return [
        Clip(
            frames=torch.randn(length, 3, h, w, generator=generator),
            masks=torch.zeros(length, h, w, dtype=torch.bool),
            boxes=torch.zeros(length, 4),
            valid=torch.ones(length, dtype=torch.int32),
            caption=texts[i % len(texts)],
            frame_ids=torch.arange(length),
            orig_size=(h, w),
            source=f"synthetic/{i}",
        )
        for i, (h, w) in enumerate(sizes)
    ]

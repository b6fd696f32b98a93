"""Helpers for tests: where parity fixtures live, small generated datasets."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from rvos_core.errors import ConfigError
from rvos_core.text import ROBERTA_TOKENIZER, Tokenizer, TokenizerSpec, load_tokenizer

PARITY_ENV = "RVOS_PARITY_DIR"
REQUIRE_PARITY_ENV = "RVOS_REQUIRE_PARITY"


def parity_root() -> Path:
    """``$RVOS_PARITY_DIR``, the folder of the parity fixtures (the root conftest.py sets a
    default, ``../shared/parity``); it may not exist."""
    base = os.environ.get(PARITY_ENV)
    if not base:
        raise ConfigError(f"{PARITY_ENV} is not set (the root conftest.py sets a default)")
    return Path(base)


def parity_required() -> bool:
    """Whether a missing parity root is an error (``RVOS_REQUIRE_PARITY=1``, as in CI)."""
    return os.environ.get(REQUIRE_PARITY_ENV, "") == "1"


def require_parity_root() -> Path:
    """The parity root; when the folder is absent, skip the calling test (fail instead when
    ``RVOS_REQUIRE_PARITY=1``). Every skip comes from this one place, so pytest's short summary
    folds them into one line."""
    root = parity_root()
    if root.is_dir():
        return root
    message = (
        f"parity fixtures folder {root} is missing: set {PARITY_ENV} to the folder holding "
        f"them (default ../shared/parity beside the repository)"
    )
    if parity_required():
        raise ConfigError(f"{message}; {REQUIRE_PARITY_ENV}=1 makes this an error")
    import pytest

    pytest.skip(message)


def parity_dir(name: str) -> Path:
    """``$RVOS_PARITY_DIR/<name>``. Without the root folder the calling test is skipped
    (``require_parity_root``); a missing fixture folder under an existing root is an error (a
    parity test must not pass vacuously)."""
    root = require_parity_root()
    path = root / name
    if not path.is_dir():
        raise ConfigError(f"parity fixture folder {path} is missing ({PARITY_ENV}={root})")
    return path


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
_ROBERTA_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


def write_tokenizer(folder: Path, arch: str, vocab_size: int = 320) -> Path:
    """Write a small tokenizer in the file layout of roberta-base or bert-base-uncased.

    "roberta": byte-level BPE trained on SAMPLE_TEXTS (vocab.json + merges.txt; ids 0-4 are
    <s> <pad> </s> <unk> <mask> as in roberta-base). "bert": a WordPiece vocab.txt of the special
    tokens, characters and continuation characters ([PAD] = 0 as in bert-base-uncased).
    For tests and benchmarks only: ids stay below ``vocab_size`` of any encoder at least this big.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if arch == "roberta":
        from tokenizers import ByteLevelBPETokenizer

        bpe = ByteLevelBPETokenizer()
        bpe.train_from_iterator(
            SAMPLE_TEXTS,
            vocab_size=vocab_size,
            min_frequency=2,
            special_tokens=list(_ROBERTA_SPECIALS),
            show_progress=False,
        )
        bpe.save_model(str(folder))
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


def tree_digest(root: Path) -> str:
    """sha256 of every file under ``root`` (hidden ones too): relative names and bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


def _when_all_ready(
    barrier: multiprocessing.synchronize.Barrier, call: Callable[[], object]
) -> None:
    barrier.wait()
    call()


def run_forked(*calls: Callable[[], object], timeout: float = 60.0) -> list[int | None]:
    """Run each call in a forked process, all released at once; their exit codes (0: returned,
    1: raised, -9: killed, still running ``timeout`` seconds after the start of the wait)."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(calls))
    processes = [context.Process(target=_when_all_ready, args=(barrier, c)) for c in calls]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
    return [process.exitcode for process in processes]

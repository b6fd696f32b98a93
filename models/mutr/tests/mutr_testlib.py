"""Helpers of the MUTR tests: a seeded tiny model, a tiny tokenizer, synthetic frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rvos_mutr import MUTR, TINY, build
from rvos_nn import testing
from rvos_nn.text import Tokenizer
from rvos_nn.training import Clip

TEXTS = ("the black dog jumping over the fence", "a duck swimming in the lake", "a red car")


def tiny_model(seed: int = 0) -> MUTR:
    """The tiny variant with its seeded default initialisation, in eval mode."""
    torch.manual_seed(seed)
    return build(TINY).eval()


def tiny_tokenizer(root: Path) -> Tokenizer:
    """A tiny tokenizer in roberta-base's layout under ``root``, loaded as the model loads it."""
    return testing.tiny_tokenizer(root, TINY.text.max_tokens)


def frames(count: int, size: tuple[int, int], seed: int = 0) -> list[Image.Image]:
    """``count`` RGB frames of (height, width): a blocky random pattern drifting right."""
    rng = np.random.default_rng(seed)
    h, w = size
    blocks = rng.integers(0, 256, (h // 4 + 1, w // 4 + count + 1, 3), dtype=np.uint8)
    pattern = blocks.repeat(4, axis=0).repeat(4, axis=1)
    return [
        Image.fromarray(np.ascontiguousarray(pattern[:h, 4 * t : 4 * t + w])) for t in range(count)
    ]


def training_clips(sizes: list[tuple[int, int]], length: int = 3, seed: int = 0) -> list[Clip]:
    """rvos_nn.testing.training_clips with this model's TEXTS."""
    return testing.training_clips(sizes, TEXTS, length, seed)

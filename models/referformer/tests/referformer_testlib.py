"""Helpers of the ReferFormer tests: a seeded tiny model, its tokenizer, synthetic frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rvos_nn import testing
from rvos_nn.text import Tokenizer
from rvos_nn.training import Clip
from rvos_referformer import TINY, ReferFormer, build

TEXTS = ("a person riding a skateboard on the left", "the black dog", "a duck swimming in the lake")


def tiny_model(seed: int = 0) -> ReferFormer:
    """The tiny variant with seeded random weights (every parameter redrawn, so that no head is
    zero-initialised), in eval mode."""
    torch.manual_seed(seed)
    model = build(TINY)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name.lower() and p.dim() == 1:
                continue
            bound = (3.0 / max(p.shape[-1], 1)) ** 0.5 if p.dim() > 1 else 0.1
            p.copy_(torch.empty(p.shape).uniform_(-bound, bound, generator=generator))
    return model.eval()


def tiny_tokenizer(root: Path) -> Tokenizer:
    """A tiny tokenizer in roberta-base's layout under ``root``, loaded as the model loads it."""
    return testing.tiny_tokenizer(root, TINY.text.max_tokens)


def frames(count: int = 5, size: tuple[int, int] = (50, 70), seed: int = 0) -> list[Image.Image]:
    """Smooth random RGB frames (height, width)."""
    rng = np.random.default_rng(seed)
    h, w = size
    base = rng.random((h // 5 + 1, w // 5 + 1, 3))
    out = []
    for t in range(count):
        grid = np.kron(np.roll(base, t, axis=1), np.ones((5, 5, 1)))[:h, :w]
        noise = rng.random((h, w, 3)) * 0.2
        out.append(Image.fromarray(((grid * 0.8 + noise) * 255).astype(np.uint8)))
    return out


def training_clips(sizes: list[tuple[int, int]], length: int = 3, seed: int = 0) -> list[Clip]:
    """rvos_nn.testing.training_clips with this model's TEXTS."""
    return testing.training_clips(sizes, TEXTS, length, seed)

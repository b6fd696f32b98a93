"""ReferFormer configuration: frozen dataclass, named variants, upstream argument names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rvos_nn.language_query import TINY_VALUES, LanguageQueryConfig


@dataclass(frozen=True)
class ReferFormerConfig(LanguageQueryConfig):
    """ReferFormer's values are exactly the shared ones (``rvos_nn.language_query``: upstream
    ``opts.py`` names, checks, ``from_upstream``); MUTR adds its own to the same base."""

    MODEL: ClassVar[str] = "ReferFormer"


FULL = ReferFormerConfig()
TINY = ReferFormerConfig(**TINY_VALUES)
VARIANTS: dict[str, ReferFormerConfig] = {"full": FULL, "tiny": TINY}

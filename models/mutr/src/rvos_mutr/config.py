"""MUTR configuration: frozen dataclass, named variants, upstream argument names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from rvos_core.errors import ConfigError
from rvos_nn.language_query import TINY_VALUES, LanguageQueryConfig

# Constructor values hard-coded in upstream's MUTR.__init__ (``MTALayer(...)``, ``MTI(...)``) that a
# fixture may change through the constructor -> our field.
CONSTRUCTOR_OVERRIDES = {
    "MTALayer.d_ffn": "mta_dim_feedforward",
    "MTALayer.nhead": "mta_heads",
    "MTI.dim_feedforward": "mti_dim_feedforward",
    "MTI.window_size": "mti_window_size",
    "MTI.enc_layers": "mti_enc_layers",
    "MTI.dec_layers": "mti_dec_layers",
    "MTI.nheads": "mti_nheads",
}


@dataclass(frozen=True)
class MUTRConfig(LanguageQueryConfig):
    """ReferFormer's values (``rvos_nn.language_query.LanguageQueryConfig``: upstream ``opts.py``
    names) plus the ``mta_*`` and ``mti_*`` values upstream hard-codes in ``MUTR.__init__``;
    ``resize_short`` is the default short side, a run sets its own with the predictor option
    ``short_side``.

    Attributes:
        mta_layers, mta_heads, mta_dim_feedforward: the multi-scale temporal aggregation layer
            stack (upstream ``MTA(MTALayer(d_model, nhead=8, d_ffn=2048), 1)``).
        mti_*: the temporal query module ``mti`` (upstream ``MTI(window_size=4, nheads=8,
            dim_feedforward=2048, enc_layers=3, dec_layers=3)``, dropout 0.2).
    """

    MODEL: ClassVar[str] = "MUTR"
    CONSTRUCTOR_OVERRIDES: ClassVar[Mapping[str, str]] = CONSTRUCTOR_OVERRIDES

    mta_layers: int = 1
    mta_heads: int = 8
    mta_dim_feedforward: int = 2048
    mti_window_size: int = 4
    mti_nheads: int = 8
    mti_dim_feedforward: int = 2048
    mti_enc_layers: int = 3
    mti_dec_layers: int = 3
    mti_dropout: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mti_window_size < 0:
            raise ConfigError(f"mti_window_size must be >= 0, got {self.mti_window_size}")
        if self.mta_layers < 1 or self.mti_dec_layers < 1:
            raise ConfigError("mta_layers and mti_dec_layers must be at least 1")


FULL = MUTRConfig()
TINY = MUTRConfig(**TINY_VALUES, mta_dim_feedforward=128, mti_dim_feedforward=128, mti_dec_layers=2)
VARIANTS: dict[str, MUTRConfig] = {"full": FULL, "tiny": TINY}

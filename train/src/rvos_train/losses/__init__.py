"""The training losses, by family name: "referformer" (ReferFormer and MUTR) and "soc".

``criterion(name, settings)`` builds a ``Criterion``: ``weight_dict``, ``__call__(outputs,
targets) -> (losses, indices)``, ``total(losses)`` and ``targets(clips)``. Both reproduce
github:RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85da0719b32ea45253f8b3077defea6 with the
default settings; ``docs/training-losses.md`` describes the families, their quirks and switches.
"""

from __future__ import annotations

from rvos_core.errors import ConfigError
from rvos_train.losses.common import Criterion, Indices, Matching
from rvos_train.losses.referformer import ReferFormerCriterion, ReferFormerLossSettings
from rvos_train.losses.soc import SOCCriterion, SOCLossSettings

LossSettings = ReferFormerLossSettings | SOCLossSettings

FAMILIES: dict[str, tuple[type[Criterion], type[LossSettings]]] = {
    "referformer": (ReferFormerCriterion, ReferFormerLossSettings),
    "soc": (SOCCriterion, SOCLossSettings),
}


def criterion(name: str, settings: LossSettings | None = None) -> Criterion:
    """The criterion of loss family ``name`` with ``settings`` (None: upstream's defaults)."""
    if name not in FAMILIES:
        raise ConfigError(f"unknown loss family {name!r} (known: {', '.join(FAMILIES)})")
    build, settings_type = FAMILIES[name]
    settings = settings_type() if settings is None else settings
    if not isinstance(settings, settings_type):
        raise ConfigError(
            f"loss family {name!r} takes {settings_type.__name__}, got {type(settings).__name__}"
        )
    return build(settings)


__all__ = [
    "FAMILIES",
    "Criterion",
    "Indices",
    "LossSettings",
    "Matching",
    "ReferFormerCriterion",
    "ReferFormerLossSettings",
    "SOCCriterion",
    "SOCLossSettings",
    "criterion",
]

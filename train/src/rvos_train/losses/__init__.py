"""The training losses, by family name: "referformer" (ReferFormer and MUTR), "soc" and
"uninext".

``criterion(name, settings)`` builds a ``Criterion``: ``weight_dict``, ``__call__(outputs,
targets) -> (losses, indices)``, ``total(losses)`` and ``targets(clips)`` (UNINEXT's criterion
has the same surface without the ``Criterion`` base: its matching is not one query per clip).
All reproduce github:RobertLuo1/iccv2023_RVOS_Challenge @
c538b0dca85da0719b32ea45253f8b3077defea6 with the default settings; ``docs/training-losses.md``
describes the families, their quirks and switches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from rvos_core.errors import ConfigError
from rvos_train.losses.common import Criterion, Indices, Matching
from rvos_train.losses.referformer import ReferFormerCriterion, ReferFormerLossSettings
from rvos_train.losses.soc import SOCCriterion, SOCLossSettings
from rvos_train.losses.uninext import UNINEXTCriterion, UNINEXTLossSettings

LossSettings = ReferFormerLossSettings | SOCLossSettings | UNINEXTLossSettings

FAMILIES: dict[str, tuple[type[Criterion] | type[UNINEXTCriterion], type[LossSettings]]] = {
    "referformer": (ReferFormerCriterion, ReferFormerLossSettings),
    "soc": (SOCCriterion, SOCLossSettings),
    "uninext": (UNINEXTCriterion, UNINEXTLossSettings),
}


def criterion(name: str, settings: LossSettings | None = None) -> Criterion | UNINEXTCriterion:
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


def settings_for(name: str, values: Mapping[str, Any], dec_layers: int) -> LossSettings:
    """The settings of family ``name``: upstream's defaults, the model's number of decoder
    layers and a configuration's ``[loss]`` table ``values`` (field name -> value; an unknown
    field or a value of the wrong type is a ConfigError naming it)."""
    if name not in FAMILIES:
        raise ConfigError(f"unknown loss family {name!r} (known: {', '.join(FAMILIES)})")
    settings_type = FAMILIES[name][1]
    defaults = {f.name: f.default for f in fields(settings_type)}
    for key, value in values.items():
        if key not in defaults or key == "dec_layers":
            known = ", ".join(k for k in defaults if k != "dec_layers")
            raise ConfigError(f"[loss] {key}: not a setting of the {name} loss (settings: {known})")
        if type(value) is not type(defaults[key]) and not (
            isinstance(defaults[key], float) and type(value) is int
        ):
            raise ConfigError(f"[loss] {key} must be {type(defaults[key]).__name__}, got {value!r}")
    typed = {k: float(v) if isinstance(defaults[k], float) else v for k, v in values.items()}
    return settings_type(**typed, dec_layers=dec_layers)


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
    "UNINEXTCriterion",
    "UNINEXTLossSettings",
    "criterion",
    "settings_for",
]

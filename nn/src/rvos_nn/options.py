"""Parsing of a model run's ``--option key=value`` strings (rvos_nn.predictor ``options``)."""

from __future__ import annotations

from rvos_core.errors import ConfigError


def parse_bool(name: str, value: str) -> bool:
    """true/false, 1/0, yes/no, on/off (any case); anything else is a ConfigError."""
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"option {name}={value!r}: use true or false")


def parse_int(name: str, value: str, *, minimum: int) -> int:
    """An integer >= ``minimum``; anything else is a ConfigError naming the option."""
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"option {name}={value!r}: not an integer") from None
    if number < minimum:
        raise ConfigError(f"option {name}={value!r}: must be >= {minimum}")
    return number

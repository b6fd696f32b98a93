"""Model options: a frozen dataclass per model, parsed once from ``--option key=value`` strings.

A model package declares its options as a dataclass whose fields are made with ``option``::

    @dataclass(frozen=True)
    class Options:
        reuse_backbone: bool = option(True, "one backbone pass per video for all expressions")
        chunk_frames: int = option(0, "clips of at most N frames (0: the whole video)", minimum=0)

and names it in its ``ModelEntry`` (rvos_nn.predictor). The contract parses the strings into it
before the package's predictor factory sees them:
fields are ``bool``, ``int``, ``int | None`` or ``float``;
a bad value or an unknown key is a ConfigError naming the option.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from rvos_core.errors import ConfigError

T = TypeVar("T")
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """The options of a model that has none."""


def option(default: Any, help: str, *, minimum: int | None = None) -> Any:
    """A field of an options dataclass: its default, a one-line help and an optional minimum."""
    return dataclasses.field(default=default, metadata={"help": help, "minimum": minimum})


def option_help(kind: type) -> dict[str, str]:
    """key -> help of every option of ``kind`` (sorted by key)."""
    return {f.name: f.metadata.get("help", "") for f in sorted(dataclasses.fields(kind), key=_name)}


def _name(field: dataclasses.Field) -> str:
    return field.name


def parse_options(kind: type[T], given: Mapping[str, str], owner: str) -> T:
    """An instance of ``kind`` from ``key=value`` strings; absent keys keep their defaults."""
    known = {f.name: f for f in dataclasses.fields(kind)}  # type: ignore[arg-type]
    unknown = sorted(set(given) - set(known))
    if unknown:
        listed = ", ".join(f"{k} ({h})" for k, h in option_help(kind).items()) or "none"
        raise ConfigError(f"{owner} has no option {', '.join(unknown)}; known: {listed}")
    hints = typing.get_type_hints(kind)
    values = {k: _parse(k, v, hints[k], known[k].metadata.get("minimum")) for k, v in given.items()}
    return kind(**values)


def _parse(name: str, value: str, hint: Any, minimum: int | None) -> bool | int | float | None:
    if hint is bool:
        return parse_bool(name, value)
    if hint is float:
        return parse_float(name, value)
    if hint == int | None and value.strip().lower() in ("", "none"):
        return None
    if hint in (int, int | None):
        return parse_int(name, value, minimum=minimum)
    raise TypeError(f"option {name}: unsupported type {hint!r} (bool, int, int | None or float)")


def parse_bool(name: str, value: str) -> bool:
    """true/false, 1/0, yes/no, on/off (any case); anything else is a ConfigError."""
    lowered = value.strip().lower()
    if lowered in TRUE:
        return True
    if lowered in FALSE:
        return False
    raise ConfigError(f"option {name}={value!r}: use true or false")


def parse_int(name: str, value: str, *, minimum: int | None = None) -> int:
    """An integer (>= ``minimum`` when given); anything else is a ConfigError naming the option."""
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"option {name}={value!r}: not an integer") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"option {name}={value!r}: must be >= {minimum}")
    return number


def parse_float(name: str, value: str) -> float:
    """A finite number; anything else is a ConfigError naming the option."""
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"option {name}={value!r}: not a number") from None
    if not math.isfinite(number):
        raise ConfigError(f"option {name}={value!r}: must be finite")
    return number

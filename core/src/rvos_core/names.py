"""Checks on names that become file-system paths (video ids, expression ids, frame names)."""

from __future__ import annotations

from pathlib import Path

from rvos_core.errors import InputError

_FORBIDDEN = ("/", "\\", "\x00")


def check_name(name: object, source: str | Path, what: str) -> str:
    """Return ``name`` if it is safe as one path component, else raise naming ``source``.

    Refuses non-strings, empty names, '.', '..', names starting with '.', and separators,
    so that no id read from a file can escape the folder it is written into.
    """
    if not isinstance(name, str) or not name:
        raise InputError(source, f"{what} {name!r} is not a non-empty string")
    if name in (".", "..") or name.startswith(".") or any(c in name for c in _FORBIDDEN):
        raise InputError(source, f"{what} {name!r} is not a safe file name")
    return name

"""The one loader of paths.env.

paths.env holds ``NAME = value`` lines (Make syntax, also read by Make). Precedence, highest first:
an explicit override, a non-empty environment variable of the same name (Make exports them, so a
``make target DATA=...`` reaches Python), the file. A relative value of the file is relative to
the file's folder; a relative override or environment value is relative to the current folder.
A variable is required only when it is used: a tool given ``--data`` needs no DATA.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rvos_core.errors import ConfigError

VARIABLES = ("DATA", "PRETRAINED", "CHECKPOINTS", "WORK", "SPLIT")
_LINE = re.compile(r"^\s*([A-Z_][A-Z0-9_]*)\s*[:?]?=\s*(.*?)\s*$")


@dataclass(frozen=True)
class Paths:
    """The values of paths.env after precedence (see the module docstring), resolved on use.

    Attributes:
        values: variable -> (value as given, folder a relative value is relative to); variables
            set nowhere (or set empty) are absent.
        source: the paths.env file read, if any.
    """

    values: Mapping[str, tuple[str, Path]]
    source: Path | None

    def value(self, name: str, option: str | None = None) -> str:
        """The value of variable ``name``; unset is a ConfigError naming it (and ``option``)."""
        if name not in self.values:
            instead = option or f"{name}=..."
            raise ConfigError(f"{name} is not set: add it to paths.env or pass {instead}")
        return self.values[name][0]

    def folder(self, name: str, option: str | None = None) -> Path:
        """Variable ``name`` as a path, a relative value resolved (not checked to exist)."""
        value = self.value(name, option)
        path = Path(os.path.expanduser(value))
        return path if path.is_absolute() else self.values[name][1] / path

    def require_dir(self, name: str, option: str | None = None) -> Path:
        """Return folder ``name`` (DATA, PRETRAINED, CHECKPOINTS or WORK) or fail naming the variable."""
        path = self.folder(name, option)
        if not path.is_dir():
            instead = option or f"on the command line ({name}=/path)"
            raise ConfigError(
                f"{name} = {path} is not a folder; set {name} in {self.source or 'paths.env'}"
                f" or pass {instead}"
            )
        return path

    def checkpoint(self, given: Path | None, default_file: str | None, owner: str) -> Path:
        """``--checkpoint`` when given, else CHECKPOINTS/<``owner``'s default file>: the one rule
        of every driver (models and propagators)."""
        if given is not None:
            return given
        if default_file is None:
            raise ConfigError(f"{owner} has no default checkpoint file: pass --checkpoint")
        return self.require_dir("CHECKPOINTS", "--checkpoint") / default_file

    @property
    def data(self) -> Path:
        return self.folder("DATA")

    @property
    def pretrained(self) -> Path:
        return self.folder("PRETRAINED")

    @property
    def checkpoints(self) -> Path:
        return self.folder("CHECKPOINTS")

    @property
    def work(self) -> Path:
        return self.folder("WORK")

    @property
    def split(self) -> str:
        return self.value("SPLIT")


def find_paths_env(start: Path | None = None) -> Path | None:
    """RVOS_PATHS_ENV if set, else the nearest paths.env in ``start`` or its parents."""
    explicit = os.environ.get("RVOS_PATHS_ENV")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"RVOS_PATHS_ENV = {path} is not a file")
        return path
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "paths.env"
        if candidate.is_file():
            return candidate
    return None


def parse_paths_env(path: Path) -> dict[str, str]:
    """Read ``NAME = value`` lines; comments (#) and blank lines are skipped."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable: {getattr(exc, 'strerror', None) or exc}") from None
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _LINE.match(line)
        if not match:
            raise ConfigError(f"{path}:{number}: expected 'NAME = value', got {raw!r}")
        values[match.group(1)] = match.group(2)
    return values


def load_paths(paths_env: Path | None = None, **overrides: str | Path | None) -> Paths:
    """The values of DATA, PRETRAINED, CHECKPOINTS, WORK, SPLIT (see the module docstring).

    ``overrides`` are keyword arguments named after the variables in lower case (``split="test"``).
    """
    source = paths_env or find_paths_env()
    from_file = parse_paths_env(source) if source else {}
    here = Path.cwd()
    values: dict[str, tuple[str, Path]] = {}
    for name in VARIABLES:
        override = overrides.get(name.lower())
        if override is not None and str(override):
            values[name] = (str(override), here)
        elif os.environ.get(name):
            values[name] = (os.environ[name], here)
        elif from_file.get(name) and source is not None:
            values[name] = (from_file[name], source.parent)
    return Paths(values, source)

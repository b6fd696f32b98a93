"""The one loader of paths.env.

paths.env holds ``NAME = value`` lines (Make syntax, also read by Make). Precedence, highest first:
an explicit override, an environment variable of the same name (Make exports them, so a
``make target DATA=...`` reaches Python), the file. Relative values are relative to the file's folder.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from rvos_core.errors import ConfigError

VARIABLES = ("DATA", "PRETRAINED", "CHECKPOINTS", "WORK", "SPLIT")
_LINE = re.compile(r"^\s*([A-Z_][A-Z0-9_]*)\s*[:?]?=\s*(.*?)\s*$")


@dataclass(frozen=True)
class Paths:
    """Resolved values of paths.env; SPLIT is a name, the others are folders."""

    data: Path
    pretrained: Path
    checkpoints: Path
    work: Path
    split: str
    source: Path | None

    def require_dir(self, name: str) -> Path:
        """Return folder ``name`` (DATA, PRETRAINED, CHECKPOINTS or WORK) or fail naming the variable."""
        path = getattr(self, name.lower())
        if not path.is_dir():
            where = f" (set in {self.source})" if self.source else ""
            raise ConfigError(
                f"{name} = {path} is not a folder{where}; set {name} in paths.env "
                f"or on the command line ({name}=/path)"
            )
        return path


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
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _LINE.match(line)
        if not match:
            raise ConfigError(f"{path}:{number}: expected 'NAME = value', got {raw!r}")
        values[match.group(1)] = match.group(2)
    return values


def load_paths(paths_env: Path | None = None, **overrides: str | Path | None) -> Paths:
    """Resolve DATA, PRETRAINED, CHECKPOINTS, WORK, SPLIT (see the module docstring)."""
    source = paths_env or find_paths_env()
    from_file = parse_paths_env(source) if source else {}
    base = source.parent if source else Path.cwd()
    resolved: dict[str, str] = {}
    for name in VARIABLES:
        value = overrides.get(name.lower())
        if value is None:
            value = os.environ.get(name) or from_file.get(name)
        if value is None or str(value) == "":
            raise ConfigError(f"{name} is not set: add it to paths.env or pass {name}=...")
        resolved[name] = str(value)
    folders = {n: _resolve(resolved[n], base) for n in VARIABLES if n != "SPLIT"}
    return Paths(
        data=folders["DATA"],
        pretrained=folders["PRETRAINED"],
        checkpoints=folders["CHECKPOINTS"],
        work=folders["WORK"],
        split=resolved["SPLIT"],
        source=source,
    )


def _resolve(value: str, base: Path) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else (base / path)

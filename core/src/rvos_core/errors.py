"""Error types. Every error a user can cause names the file (or variable) and the problem."""

from __future__ import annotations

from pathlib import Path


class RvosError(Exception):
    """Base class of the errors the command-line tools report without a traceback."""


class InputError(RvosError):
    """Bad input: a missing, malformed or inconsistent file.

    Args:
        path: the file or folder at fault (None when the input is not a file).
        problem: what is wrong with it, in words.
    """

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)

    def __reduce__(self) -> tuple[type, tuple[Path | None, str]]:
        """Pickle by (path, problem), so that the error crosses process boundaries (a subclass
        arrives as an InputError with the same path and message)."""
        return InputError, (self.path, self.problem)


class ConfigError(RvosError):
    """A missing or wrong setting (a paths.env variable, a command-line option)."""

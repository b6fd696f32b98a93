"""What every command of the project shares and needs only the standard library (so that
``rvos_core.recipe`` can use it before any environment exists): the parser and the error form.

Every error a user can cause ends a command with one line on stderr, ``error: ...``, and exit
status 2: a usage error too (``error: PROG: problem (see PROG -h)``, no usage block).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from rvos_core.errors import RvosError

Body = Callable[[Sequence[str] | None], int]


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors are one line (subcommands inherit it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} -h)\n")


def os_error_line(exc: OSError) -> str:
    """'<file>: <problem>' of an operating-system error (an unwritable output, a full disk...)."""
    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    problem = exc.strerror or str(exc)
    return f"{' -> '.join(names)}: {problem}" if names else problem


def run_command(body: Body, argv: Sequence[str] | None = None) -> int:
    """Run a command's body: an RvosError, or an OSError of the system (a folder where a file is
    to be written, no permission, no space), becomes one line ``error: ...`` and status 2;
    Ctrl-C gives status 130."""
    try:
        return body(argv)
    except RvosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: finished videos are kept; run the same command again to resume",
            file=sys.stderr,
        )
        return 130

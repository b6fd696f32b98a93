"""Atomic file writes (a temporary file in the same folder, then a rename) and file locks.

A temporary is created with the mode the umask gives any new file (0644 under umask 022) and is
locked (``flock``) while it is written, so that every write first removes the temporaries of its
target that no live process holds: the debris of a killed writer goes with the next write of the
same file. Locks are ``flock`` locks, which the kernel releases when their process dies.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Temporaries are ".<target name>.<8 characters>.tmp" (the 8 characters as tempfile.mkstemp
# draws them, which earlier versions used, or hex digits).
_TEMPORARY = r"\.{name}\.[a-z0-9_]{{8}}\.tmp"


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not removed or replaced since)."""
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def lock(path: Path, shared: bool = False) -> int:
    """Wait for an flock on ``path`` (created if missing); return the descriptor that holds it.

    A lock file may be removed by the holder of an exclusive lock: a lock taken on a file that
    ``path`` no longer names is dropped and taken again. The file is opened for reading only, so
    that users sharing a folder can lock each other's lock files. ``unlock`` releases it.
    """
    operation = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    while True:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
        fcntl.flock(fd, operation)
        if _same_file(fd, path):
            return fd
        os.close(fd)


def unlock(fd: int) -> None:
    """Release a lock taken with ``lock`` (closing its descriptor)."""
    os.close(fd)


def _remove_if_stale(path: Path) -> None:
    """Remove temporary ``path`` unless a live writer holds its lock."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if _same_file(fd, path):
            path.unlink(missing_ok=True)
    except BlockingIOError:
        pass
    finally:
        os.close(fd)


def remove_stale_temporaries(target: Path) -> None:
    """Remove the temporaries of ``target`` left by writers that died before their rename."""
    pattern = re.compile(_TEMPORARY.format(name=re.escape(target.name)))
    try:
        names = os.listdir(target.parent)
    except FileNotFoundError:
        return
    for name in names:
        if pattern.fullmatch(name):
            _remove_if_stale(target.parent / name)


def _create_temporary(target: Path) -> tuple[int, Path]:
    """A new, locked temporary next to ``target``: (descriptor holding the lock, path)."""
    while True:
        path = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        fcntl.flock(fd, fcntl.LOCK_EX)
        if _same_file(fd, path):
            return fd, path
        os.close(fd)  # a cleaner took it between the creation and the lock


@contextmanager
def _temporary(target: Path) -> Iterator[Path]:
    """A locked temporary path next to ``target``, removed on exit unless renamed away."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    fd, tmp = _create_temporary(target)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)
        os.close(fd)


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success rename it onto ``target``.

    On failure the temporary is removed and ``target`` is left as it was.
    """
    with _temporary(target) as tmp:
        yield tmp
        os.replace(tmp, target)


def write_bytes(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_new(target: Path, data: bytes) -> bool:
    """Create ``target`` holding ``data`` unless it exists (atomically: readers see all of it or
    nothing, and of two concurrent writers exactly one creates it); True when this call did."""
    with _temporary(target) as tmp:
        tmp.write_bytes(data)
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
    return True


def dumps_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys only where the caller sorted them, 1-space indent, newline."""
    return json.dumps(obj, indent=1, ensure_ascii=False) + "\n"


def write_json(target: Path, obj: Any) -> None:
    """Write ``obj`` as deterministic JSON, atomically."""
    write_bytes(target, dumps_json(obj).encode())


def replace_dir(staged: Path, target: Path) -> None:
    """Move folder ``staged`` onto ``target``, removing a stale ``target`` first."""
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, target)

"""Sharding by video: ``--shard i/n`` takes every n-th video of the sorted list, starting at i."""

from __future__ import annotations

from collections.abc import Sequence

from rvos_core.errors import ConfigError


def parse_shard(text: str | None) -> tuple[int, int]:
    """Parse "i/n" (0 <= i < n); None means the whole list (0/1)."""
    if text is None:
        return 0, 1
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard expects i/n (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard {text}: need 0 <= i < n")
    return index, count


def select_shard(items: Sequence[str], shard: tuple[int, int]) -> list[str]:
    """Items of shard (i, n) in sorted order: positions i, i+n, i+2n, ..."""
    index, count = shard
    return sorted(items)[index::count]

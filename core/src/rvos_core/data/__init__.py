"""Dataset readers: Ref-YouTube-VOS, MeViS, Ref-DAVIS17, as distributed."""

from __future__ import annotations

from pathlib import Path

from rvos_core.data import mevis, refdavis, refytvos
from rvos_core.data.base import Dataset, Expression, Grouping, Video, open_image
from rvos_core.errors import InputError

LOADERS = {"refytvos": refytvos.load, "mevis": mevis.load, "refdavis": refdavis.load}


def open_dataset(name: str, data: Path, split: str) -> Dataset:
    """Open split ``split`` of benchmark ``name`` ("refytvos", "mevis", "refdavis") under ``data``."""
    if name not in LOADERS:
        raise InputError(None, f"unknown dataset {name!r}; known: {', '.join(sorted(LOADERS))}")
    return LOADERS[name](Path(data), split)


__all__ = ["Dataset", "Expression", "Grouping", "Video", "open_dataset", "open_image"]

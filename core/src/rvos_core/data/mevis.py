"""MeViS as distributed: ``<split>/{JPEGImages/<video>/<frame>.jpg, meta_expressions.json, mask_dict.json}``.

Splits: train, valid_u (ground truth public), valid, test. Ground truth of an expression is the
union of its ``anno_id`` masks in ``mask_dict.json`` (COCO RLE per frame, null = absent).
Expressions are independent (no pairing).
"""

from __future__ import annotations

from pathlib import Path

from rvos_core.data.base import Dataset, build_video, load_json, parse_meta_videos
from rvos_core.errors import InputError

SPLITS = ("train", "valid_u", "valid", "test")
FOLDER_NAMES = ("mevis", "MeViS", "MeViS_release")


def find_root(data: Path) -> Path:
    """The MeViS folder inside DATA (or DATA itself if it holds a split with a meta file)."""
    for candidate in (data, *(data / n for n in FOLDER_NAMES)):
        if any((candidate / s / "meta_expressions.json").is_file() for s in SPLITS):
            return candidate
    raise InputError(data, f"no MeViS here: expected one of {', '.join(FOLDER_NAMES)} with a split")


def load(data: Path, split: str) -> Dataset:
    """Read split ``split`` of MeViS found in ``data`` (DATA or the benchmark folder)."""
    if split not in SPLITS:
        raise InputError(None, f"MeViS has splits {SPLITS}, not {split!r}")
    root = find_root(data)
    path = root / split / "meta_expressions.json"
    videos = parse_meta_videos(load_json(path), path)
    images = root / split / "JPEGImages"
    built = {vid: build_video(vid, videos[vid], images / vid, path) for vid in sorted(videos)}
    extra = {"mask_dict": root / split / "mask_dict.json"}
    return Dataset("mevis", split, root, path, built, grouping="none", extra=extra)

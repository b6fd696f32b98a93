"""Ref-YouTube-VOS as distributed (2021 download, with the re-hosted test meta).

Layout under the benchmark folder::

    meta_expressions/{train,valid,test}/meta_expressions.json
    {train,valid,test}/JPEGImages/<video>/<frame>.jpg
    train/Annotations/<video>/<frame>.png

The valid meta lists the valid and the test videos; the valid split is the valid meta minus the
test meta when both are present (202 videos), as the server and the RVOS code bases count it.
Frames are exactly those listed in the meta; expressions keep their meta keys ("0", "1", ...).
"""

from __future__ import annotations

from pathlib import Path

from rvos_core.data.base import Dataset, build_video, load_json, parse_meta_videos
from rvos_core.errors import InputError

SPLITS = ("train", "valid", "test")
FOLDER_NAMES = ("refer_youtube_vos", "ref-youtube-vos", "ref_youtube_vos", "Ref-YouTube-VOS")


def find_root(data: Path) -> Path:
    """The Ref-YouTube-VOS folder inside DATA (or DATA itself if it holds meta_expressions/)."""
    if (data / "meta_expressions").is_dir():
        return data
    for name in FOLDER_NAMES:
        if (data / name / "meta_expressions").is_dir():
            return data / name
    raise InputError(
        data,
        f"no Ref-YouTube-VOS here: expected one of {', '.join(FOLDER_NAMES)} "
        "holding meta_expressions/",
    )


def meta_path(root: Path, split: str) -> Path:
    return root / "meta_expressions" / split / "meta_expressions.json"


def load(data: Path, split: str) -> Dataset:
    """Read split ``split`` of Ref-YouTube-VOS found in ``data`` (DATA or the benchmark folder)."""
    if split not in SPLITS:
        raise InputError(None, f"Ref-YouTube-VOS has splits {SPLITS}, not {split!r}")
    root = find_root(data)
    path = meta_path(root, split)
    videos = parse_meta_videos(load_json(path), path)
    if split == "valid" and meta_path(root, "test").is_file():
        test_path = meta_path(root, "test")
        test_ids = set(parse_meta_videos(load_json(test_path), test_path))
        videos = {v: e for v, e in videos.items() if v not in test_ids}
    image_root = _image_root(root, split)
    built = {vid: build_video(vid, videos[vid], image_root / vid, path) for vid in sorted(videos)}
    return Dataset("refytvos", split, root, path, built, grouping="pairs")


def _image_root(root: Path, split: str) -> Path:
    """``<split>/JPEGImages``; test frames may also sit in valid/JPEGImages (older downloads)."""
    primary = root / split / "JPEGImages"
    if split == "test" and not primary.is_dir() and (root / "valid" / "JPEGImages").is_dir():
        return root / "valid" / "JPEGImages"
    return primary

"""Where the propagators' training sets lie under DATA, and what each one lists.

Layouts (each found under DATA in one of the folders named below, or DATA itself is the folder)::

    youtubevos   <folder>/train/meta.json, train/JPEGImages/<video>/<frame>.jpg,
                 train/Annotations/<video>/<frame>.png (palette, pixel = object id)
                 folders: youtube_vos, youtube-vos, YouTube-VOS, ytvos, YTB/2019; then, as the
                 same layout, Ref-YouTube-VOS's (refer_youtube_vos, ...)
    davis2017    <folder>/ImageSets/2017/train.txt, JPEGImages/480p/<video>/*.jpg,
                 Annotations/480p/<video>/*.png
                 folders: DAVIS, davis, DAVIS2017, davis2017, DAVIS-2017

The static image sets are found by static_sets.py.

Upstream: github:yoxu515/aot-benchmark @ 601c138435a1764eb01404f3495b914e6e2e8eca,
dataloaders/train_datasets.py (YOUTUBEVOS_Train, DAVIS2017_Train) and configs/default.py
(DIR_YTB = datasets/YTB, read at YTB/2019/train; DIR_DAVIS).
Known differences: videos are sorted by id (upstream: meta.json's order); a DAVIS video's frames
and annotations are paired by file stem and must match one to one (upstream pairs sorted lists by
position); only DAVIS's 480p frames are read (upstream's default, TRAIN_DATASET_FULL_RESOLUTION
False).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rvos_core.data import refytvos
from rvos_core.data.base import load_json
from rvos_core.errors import InputError
from rvos_core.names import check_name

YOUTUBEVOS_FOLDERS = ("youtube_vos", "youtube-vos", "YouTube-VOS", "ytvos", "YTB/2019")
DAVIS_FOLDERS = ("DAVIS", "davis", "DAVIS2017", "davis2017", "DAVIS-2017")


@dataclass(frozen=True)
class VideoEntry:
    """One training video: ``frames`` and their ``labels`` (annotation PNGs), in time order."""

    source: str
    frames: tuple[Path, ...]
    labels: tuple[Path, ...]


def _first(candidates: Sequence[Path], holds: str, what: str, data: Path) -> Path:
    for candidate in candidates:
        if (candidate / holds).exists():
            return candidate
    names = ", ".join(str(c.relative_to(data)) if c != data else "." for c in candidates)
    raise InputError(data, f"no {what} here: expected {holds} in one of {names}")


def youtubevos_root(data: Path) -> Path:
    """The train split folder (holding meta.json) of YouTube-VOS 2019, else of Ref-YouTube-VOS."""
    folders = (*YOUTUBEVOS_FOLDERS, *refytvos.FOLDER_NAMES)
    candidates = [data, data / "train", *(data / f / "train" for f in folders)]
    return _first(candidates, "meta.json", "YouTube-VOS train split", data)


def youtubevos_videos(data: Path) -> list[VideoEntry]:
    """The videos of meta.json with two or more annotated frames, each with the sorted union of
    the frames of its objects listed in two or more frames (upstream's YOUTUBEVOS_Train)."""
    root = youtubevos_root(data)
    meta_path = root / "meta.json"
    videos = _meta_videos(load_json(meta_path), meta_path)
    found = []
    for video_id in sorted(videos):
        check_name(video_id, meta_path, "video id")
        frames = _video_frames(videos[video_id], meta_path, video_id)
        if len(frames) >= 2:
            found.append(
                VideoEntry(
                    source=f"youtubevos/{video_id}",
                    frames=tuple(root / "JPEGImages" / video_id / f"{f}.jpg" for f in frames),
                    labels=tuple(root / "Annotations" / video_id / f"{f}.png" for f in frames),
                )
            )
    if not found:
        raise InputError(meta_path, "no video with an object annotated in two or more frames")
    return found


def _meta_videos(meta: Any, path: Path) -> dict[str, Any]:
    videos = meta.get("videos") if isinstance(meta, dict) else None
    if not isinstance(videos, dict):
        raise InputError(path, "no 'videos' object")
    return videos


def _video_frames(entry: Any, path: Path, video_id: str) -> list[str]:
    objects = entry.get("objects") if isinstance(entry, dict) else None
    if not isinstance(objects, dict):
        raise InputError(path, f"video {video_id}: no 'objects' object")
    frames: set[str] = set()
    for obj_id, obj in objects.items():
        listed = obj.get("frames") if isinstance(obj, dict) else None
        if not isinstance(listed, list):
            raise InputError(path, f"video {video_id}, object {obj_id!r}: no 'frames' list")
        if len(listed) >= 2:
            frames.update(check_name(f, path, f"frame name of video {video_id}") for f in listed)
    return sorted(frames)


def davis_root(data: Path) -> Path:
    """The DAVIS-2017 folder (holding ImageSets/2017/train.txt)."""
    candidates = [data, *(data / f for f in DAVIS_FOLDERS)]
    return _first(candidates, "ImageSets/2017/train.txt", "DAVIS-2017", data)


def davis_videos(data: Path) -> list[VideoEntry]:
    """The videos of ImageSets/2017/train.txt, in its order: 480p frames and annotations."""
    root = davis_root(data)
    listing = root / "ImageSets" / "2017" / "train.txt"
    names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    if not names:
        raise InputError(listing, "lists no video")
    return [_davis_video(root, check_name(n, listing, "video name")) for n in names]


def _davis_video(root: Path, name: str) -> VideoEntry:
    images = _stems(root / "JPEGImages" / "480p" / name, ".jpg")
    labels = _stems(root / "Annotations" / "480p" / name, ".png")
    if sorted(images) != sorted(labels) or len(images) < 2:
        raise InputError(
            root / "Annotations" / "480p" / name,
            f"needs one annotation per frame of JPEGImages/480p/{name} and two or more frames "
            f"({len(images)} frames, {len(labels)} annotations)",
        )
    stems = sorted(images)
    return VideoEntry(
        f"davis2017/{name}", tuple(images[s] for s in stems), tuple(labels[s] for s in stems)
    )


def _stems(folder: Path, suffix: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise InputError(folder, "folder is missing")
    return {p.stem: p for p in folder.iterdir() if p.suffix == suffix}

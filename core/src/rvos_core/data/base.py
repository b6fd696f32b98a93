"""Dataset model shared by every reader: videos with their listed frames and expressions."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image, UnidentifiedImageError

from rvos_core.errors import InputError
from rvos_core.names import check_name

Grouping = Literal["pairs", "none"]


@dataclass(frozen=True)
class Expression:
    """One referring expression of a video; ``id`` is its key in the meta file ("0", "1", ...)."""

    id: str
    text: str
    obj_ids: tuple[int, ...] = ()
    anno_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Video:
    """A video as listed in the meta file: frames in meta order, expressions in meta order."""

    id: str
    frames: tuple[str, ...]
    expressions: tuple[Expression, ...]
    image_dir: Path
    extension: str = ".jpg"

    @property
    def exp_ids(self) -> tuple[str, ...]:
        return tuple(e.id for e in self.expressions)

    def frame_path(self, frame: str) -> Path:
        return self.image_dir / f"{frame}{self.extension}"

    def frame_paths(self) -> list[Path]:
        """Paths of all listed frames; the first missing one is an InputError."""
        paths = [self.frame_path(f) for f in self.frames]
        for path in paths:
            if not path.is_file():
                raise InputError(path, f"frame listed in the meta of video {self.id} is missing")
        return paths

    def frame_size(self) -> tuple[int, int]:
        """(H, W) of the video, read from the first frame's header (no decoding)."""
        return _header_size(self.frame_path(self.frames[0]), self.id)

    def checked_frame_size(self) -> tuple[int, int]:
        """(H, W) shared by every listed frame, read from the headers (no decoding); a missing
        or unreadable frame, or one of another size than the first, is an InputError."""
        size = self.frame_size()
        for path in map(self.frame_path, self.frames[1:]):
            other = _header_size(path, self.id)
            if other != size:
                raise InputError(
                    path,
                    f"frame is {other[1]}x{other[0]}, the video's first is {size[1]}x{size[0]}",
                )
        return size

    def frame_size_if_present(self) -> tuple[int, int] | None:
        """frame_size(), or None when the first frame is not there (a split read without frames)."""
        return self.frame_size() if self.frame_path(self.frames[0]).is_file() else None


@dataclass(frozen=True)
class Dataset:
    """One split of one benchmark.

    Attributes:
        name: "refytvos", "mevis" or "refdavis".
        split: the split name as the benchmark spells it.
        root: the benchmark's folder.
        meta_path: the meta file the videos come from.
        videos: video id -> Video, sorted by id.
        grouping: how votes group expressions by default ("pairs": ids 2i, 2i+1 describe one object).
    """

    name: str
    split: str
    root: Path
    meta_path: Path
    videos: Mapping[str, Video]
    grouping: Grouping
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Video]:
        return iter(self.videos.values())

    def __len__(self) -> int:
        return len(self.videos)

    def video(self, video_id: str) -> Video:
        try:
            return self.videos[video_id]
        except KeyError:
            raise InputError(self.meta_path, f"video {video_id!r} is not in this split") from None


def load_json(path: Path) -> Any:
    """Parse a JSON file; missing or malformed files are InputErrors naming the file."""
    try:
        with path.open("rb") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise InputError(path, "file is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not valid JSON: {exc}") from None


def parse_meta_videos(meta: Any, meta_path: Path) -> dict[str, dict[str, Any]]:
    """The ``videos`` object of a Ref-YouTube-VOS-style meta file, checked for shape."""
    if not isinstance(meta, dict) or not isinstance(meta.get("videos"), dict):
        raise InputError(meta_path, "meta file has no 'videos' object")
    for video_id, entry in meta["videos"].items():
        check_name(video_id, meta_path, "video id")
        if not isinstance(entry, dict) or not isinstance(entry.get("frames"), list):
            raise InputError(meta_path, f"video {video_id}: no 'frames' list")
        if not isinstance(entry.get("expressions"), dict):
            raise InputError(meta_path, f"video {video_id}: no 'expressions' object")
        if not entry["frames"]:
            raise InputError(meta_path, f"video {video_id}: empty 'frames' list")
    return meta["videos"]


def build_video(video_id: str, entry: dict[str, Any], image_dir: Path, meta_path: Path) -> Video:
    """Video from one meta entry; frame names and expression ids are checked as file names."""
    frames = tuple(
        check_name(f, meta_path, f"frame name of video {video_id}") for f in entry["frames"]
    )
    if len(set(frames)) != len(frames):
        raise InputError(meta_path, f"video {video_id}: a frame is listed twice")
    expressions = []
    for exp_id, exp in entry["expressions"].items():
        check_name(exp_id, meta_path, f"expression id of video {video_id}")
        if not isinstance(exp, dict):
            raise InputError(meta_path, f"video {video_id}, expression {exp_id}: not an object")
        expressions.append(
            Expression(
                id=exp_id,
                text=str(exp.get("exp", "")),
                obj_ids=_int_tuple(exp.get("obj_id")),
                anno_ids=tuple(str(a) for a in _as_list(exp.get("anno_id"))),
            )
        )
    return Video(video_id, frames, tuple(expressions), image_dir)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _int_tuple(value: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in _as_list(value))


@contextmanager
def _reading(path: Path, missing: str) -> Iterator[None]:
    """Turn Pillow's errors while reading ``path`` into InputErrors naming it."""
    try:
        yield
    except FileNotFoundError:
        raise InputError(path, missing) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputError(path, f"unreadable image: {exc}") from None


def _header_size(path: Path, video_id: str) -> tuple[int, int]:
    """(H, W) of a frame of video ``video_id`` from its header."""
    with _reading(path, f"frame of video {video_id} is missing"), Image.open(path) as image:
        return image.height, image.width


def open_image(path: Path) -> Image.Image:
    """Open and fully decode a frame with Pillow, as RGB; unreadable files are InputErrors."""
    with _reading(path, "frame is missing"), Image.open(path) as image:
        image.load()
        return image.convert("RGB")


def decoded_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image decoded in full: a truncated or damaged file is an InputError."""
    with _reading(path, "frame is missing"), Image.open(path) as image:
        image.load()
        return image.height, image.width

"""What every training reader produces, and the reading of frames and target masks they share.

A *referral* is one referring expression and what it refers to, in one video (Ref-YouTube-VOS,
MeViS) or one image (RefCOCO, a one-frame video): the caption, the frame files in time order, the
frames in which the annotations say the target is visible, and a target reader that gives the
target's mask in any frame.

Upstream: github:RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85da0719b32ea45253f8b3077defea6
(ReferFormer/datasets/ytvos.py, soc_test/datasets/refer_youtube_vos/refer_youtube_vos_dataset.py,
soc_test/datasets/coco/ref2seq.py) and github:henghuiding/MeViS @ 7c0620b (ReferFormer_dataset.py).
Known differences: upstream opens files without checks (a missing frame is a PIL error, a mask of
another size broadcasts or fails later, an empty target is silently resampled); here each of those
is an InputError naming the file. Captions are cleaned as upstream's video loaders do (lower case,
single spaces), also for RefCOCO, whose upstream loaders pass them as written.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError
from pycocotools import mask as coco_mask

from rvos_core.data import open_image
from rvos_core.errors import InputError


class TargetReader(Protocol):
    """The referred object's mask in one frame of its video."""

    def read(self, index: int, size: tuple[int, int], required: bool) -> np.ndarray:
        """bool [H, W] of the target in frame ``index``, whose decoded size is ``size`` = (H, W).

        A missing, unreadable or other-sized annotation is an InputError naming its file, and so
        is an empty target when ``required`` (the annotations say it is visible there).
        """
        ...


@dataclass(frozen=True)
class Referral:
    """One expression and its target.

    Attributes:
        source: "<dataset>/<video>/<exp_id>" (RefCOCO: "<set>/<image entry id>"), for messages.
        caption: the expression, cleaned (lower case, single spaces).
        frames: the frame files in time order (one file for an image).
        present: indices into ``frames`` where the annotations say the target is visible.
        target: reads the target's mask in a frame.
    """

    source: str
    caption: str
    frames: tuple[Path, ...]
    present: frozenset[int]
    target: TargetReader


def clean_caption(text: str) -> str:
    """Lower case, runs of white space made one space (upstream's caption clean-up)."""
    return " ".join(text.lower().split())


def keep_visible(referrals: list[Referral], strict: bool, path: Path) -> list[Referral]:
    """The referrals whose target the annotations (``path``) show in some frame; one shown in no
    frame is an InputError when ``strict`` (upstream resamples it away at every read or skips it)."""
    for referral in referrals:
        if strict and not referral.present:
            raise InputError(
                path,
                f"{referral.source}: the annotations show its target in no frame "
                "(strict=False leaves such expressions out)",
            )
    return [r for r in referrals if r.present]


def read_frames(paths: Sequence[Path]) -> np.ndarray:
    """uint8 [T, H, W, 3] RGB of ``paths`` (a path listed twice is decoded once); a missing or
    corrupt frame, or one of another size than the first, is an InputError naming it."""
    decoded: dict[Path, np.ndarray] = {}
    for path in paths:
        if path not in decoded:
            decoded[path] = np.asarray(open_image(path))
            _check_same_size(path, decoded[path], decoded[paths[0]], paths[0])
    return np.stack([decoded[p] for p in paths])


def _check_same_size(path: Path, frame: np.ndarray, first: np.ndarray, first_path: Path) -> None:
    if frame.shape != first.shape:
        (h, w), (h0, w0) = frame.shape[:2], first.shape[:2]
        raise InputError(
            path, f"frame is {w}x{h}, {first_path.name} of the same video is {w0}x{h0}"
        )


def read_masks(
    referral: Referral, indices: Sequence[int], size: tuple[int, int], strict: bool
) -> np.ndarray:
    """bool [T, H, W]: the target in frames ``indices`` (an index listed twice is read once);
    with ``strict``, a frame the annotations list as showing the target must show it."""
    read: dict[int, np.ndarray] = {}
    for index in map(int, indices):
        if index not in read:
            required = strict and index in referral.present
            read[index] = referral.target.read(index, size, required)
    return np.stack([read[int(i)] for i in indices])


def check_size(path: Path, shape: tuple[int, ...], size: tuple[int, int], what: str) -> None:
    """An InputError naming ``path`` when ``shape`` (H, W) is not the frame's ``size``."""
    if tuple(shape) != tuple(size):
        found = "x".join(map(str, shape[::-1])) or "of no size"
        raise InputError(path, f"{what} is {found}, its frame is {size[1]}x{size[0]}")


@dataclass(frozen=True)
class PaletteTarget:
    """Ref-YouTube-VOS: one palette PNG per frame whose pixel values are object ids."""

    paths: tuple[Path, ...]
    obj_id: int

    def read(self, index: int, size: tuple[int, int], required: bool) -> np.ndarray:
        path = self.paths[index]
        labels = read_label_png(path)
        check_size(path, labels.shape, size, "annotation")
        mask = labels == self.obj_id
        if required and not mask.any():
            raise InputError(
                path, f"object {self.obj_id} has no pixel here, yet meta.json lists this frame"
            )
        return mask


def read_label_png(path: Path) -> np.ndarray:
    """uint8 [H, W] of an indexed (palette) or 8-bit grayscale PNG; anything else is refused."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode not in ("P", "L"):
                raise InputError(
                    path, f"annotation must be a palette PNG, found mode {image.mode!r}"
                )
            return np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise InputError(path, "annotation PNG is missing") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputError(path, f"unreadable annotation PNG: {exc}") from None


@dataclass(frozen=True)
class RleTarget:
    """MeViS: per anno_id one COCO RLE per frame (null = absent); the target is their union."""

    annos: tuple[str, ...]
    rles: tuple[Sequence[Any], ...]
    path: Path

    def read(self, index: int, size: tuple[int, int], required: bool) -> np.ndarray:
        mask = np.zeros(size, bool)
        for anno, rles in zip(self.annos, self.rles, strict=True):
            if rles[index] is None:
                continue
            where = f"anno_id {anno}, frame {index}"
            part = decode_segmentation(rles[index], size, self.path, where)
            if required and not part.any():
                raise InputError(self.path, f"{where}: empty RLE (MeViS writes null for absent)")
            mask |= part
        return mask


@dataclass(frozen=True)
class SegmentationTarget:
    """RefCOCO: the COCO segmentation (polygons or RLE) of the one annotation of an image entry,
    for an image of the size the entry states."""

    segmentation: Any
    size: tuple[int, int]
    path: Path
    where: str

    def read(self, index: int, size: tuple[int, int], required: bool) -> np.ndarray:
        if tuple(size) != self.size:
            h, w = self.size
            raise InputError(
                self.path, f"{self.where}: annotated as {w}x{h}, the image is {size[1]}x{size[0]}"
            )
        mask = decode_segmentation(self.segmentation, size, self.path, self.where)
        if required and not mask.any():
            raise InputError(self.path, f"{self.where}: the segmentation covers no pixel")
        return mask


def decode_segmentation(
    segmentation: Any, size: tuple[int, int], path: Path, where: str
) -> np.ndarray:
    """bool [H, W] of a COCO segmentation: polygons [[x, y, ...], ...], or an RLE
    {"size": [H, W], "counts": str | list} whose size must be ``size``."""
    with warnings.catch_warnings():
        # pycocotools 2.0.11 still calls np.array(..., copy=False) on its own type
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        try:
            return coco_mask.decode(_coco_rle(segmentation, size, path, where)).astype(bool)
        except (ValueError, TypeError, IndexError) as exc:
            raise InputError(path, f"{where}: undecodable segmentation: {exc}") from None


def _coco_rle(segmentation: Any, size: tuple[int, int], path: Path, where: str) -> dict[str, Any]:
    """The one pycocotools RLE of a segmentation (polygons merged)."""
    height, width = size
    if isinstance(segmentation, list) and all(isinstance(p, list) for p in segmentation):
        return coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width))
    counts = segmentation.get("counts") if isinstance(segmentation, dict) else None
    if not isinstance(counts, str | bytes | list):
        raise InputError(path, f"{where}: segmentation is neither polygons nor an RLE")
    check_size(path, tuple(segmentation.get("size") or ()), size, f"{where}: RLE")
    if isinstance(counts, list):
        return coco_mask.frPyObjects(segmentation, height, width)
    return {
        "size": [height, width],
        "counts": counts.encode() if isinstance(counts, str) else counts,
    }

"""The static image sets of the PRE stage, read in upstream's prepared layout or as distributed.

Each set is taken from the prepared ``Static`` folder when it holds it, else from its own download
(paths under DATA; the first found)::

    prepared  static/ or Static/: JPEGImages/<set>/<name>.jpg|.png, Annotations/<set>/<name>.png
              (palette or grayscale, pixel = object id), set in COCO, ECSSD, MSRA10K, PASCAL-S,
              PASCALVOC2012
    COCO      coco/ or COCO/: annotations/instances_{train,val}2017.json, {train,val}2017/*.jpg
    ECSSD     ECSSD/: images/*.jpg, ground_truth_mask/*.png
    MSRA10K   MSRA10K/: MSRA10K_Imgs_GT/Imgs/*.jpg with the .png mask beside each
    PASCAL-S  PASCAL-S/: datasets/imgs/pascal/*.jpg, datasets/masks/pascal/*.png
    PASCAL-VOC  VOCdevkit/VOC2012/, VOC2012/ or PASCALVOC2012/: ImageSets/Segmentation/trainval.txt,
              JPEGImages/<name>.jpg, SegmentationObject/<name>.png

The downloads are read as the preparation upstream points to makes the prepared layout
(github:xmlyqing00/AFB-URR, unify_pretrain_dataset.py; upstream github:yoxu515/aot-benchmark @
601c138435a1764eb01404f3495b914e6e2e8eca README "Static" and dataloaders/train_datasets.py
StaticTrain): a saliency mask (ECSSD, MSRA10K, PASCAL-S) is background below 128 and one object
per distinct value from 128 up, in value order; a COCO image has the instances of area 500 or
more painted in annotation order (a later one over an earlier one) as ids 1, 2, ..., and images
with none are left out; a VOC object mask keeps ids up to 20 (255, the void border, becomes 0).
Known differences: a mask is read as 8-bit grayscale (a colour saliency mask by its luminance;
the preparation compares colour triples by their channel mean); an image without its mask is an
InputError (the preparation pairs sorted lists by position; StaticTrain skips a whole set whose
counts differ).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image, UnidentifiedImageError

from rvos_core.data.base import load_json
from rvos_core.errors import InputError
from rvos_train.data.referrals import check_size, decode_segmentation, read_label_png

STATIC_SETS = ("COCO", "ECSSD", "MSRA10K", "PASCAL-S", "PASCALVOC2012")
PREPARED_FOLDERS = ("static", "Static")
SALIENCY_THRESHOLD = 128
COCO_MIN_AREA = 500
VOC_MAX_ID = 20


class LabelSource(Protocol):
    """The object ids of one image; ``path`` is the file named in messages."""

    path: Path

    def read(self, size: tuple[int, int]) -> np.ndarray:
        """uint8 [H, W] ids of the image whose size is ``size`` = (H, W); another size, or a
        missing or unreadable file, is an InputError naming ``path``."""
        ...


@dataclass(frozen=True)
class ImageEntry:
    """One static image and its object ids."""

    source: str
    image: Path
    labels: LabelSource


@dataclass(frozen=True)
class PaletteLabels:
    """A palette or grayscale PNG whose pixel values are object ids; ids above ``max_id`` are 0."""

    path: Path
    max_id: int = 255

    def read(self, size: tuple[int, int]) -> np.ndarray:
        labels = read_label_png(self.path)
        check_size(self.path, labels.shape, size, "annotation")
        return np.where(labels > self.max_id, 0, labels).astype(np.uint8)


@dataclass(frozen=True)
class SaliencyLabels:
    """A saliency mask: below 128 background, each distinct value from 128 up an object."""

    path: Path

    def read(self, size: tuple[int, int]) -> np.ndarray:
        try:
            with Image.open(self.path) as image:
                gray = np.asarray(image.convert("L"))
        except FileNotFoundError:
            raise InputError(self.path, "mask is missing") from None
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise InputError(self.path, f"unreadable mask: {exc}") from None
        check_size(self.path, gray.shape, size, "mask")
        table = np.zeros(256, np.uint8)
        values = np.unique(gray[gray >= SALIENCY_THRESHOLD])
        table[values] = np.arange(1, len(values) + 1)
        return table[gray]


@dataclass(frozen=True)
class CocoLabels:
    """The instances of one COCO image (segmentations in annotation order), from ``path``."""

    path: Path
    image_id: int
    size: tuple[int, int]
    segmentations: tuple[Any, ...]

    def read(self, size: tuple[int, int]) -> np.ndarray:
        where = f"image {self.image_id}"
        if tuple(size) != self.size:
            h, w = self.size
            raise InputError(
                self.path, f"{where}: annotated as {w}x{h}, the file is {size[1]}x{size[0]}"
            )
        labels = np.zeros(size, np.uint8)
        for k, segmentation in enumerate(self.segmentations, 1):
            labels[decode_segmentation(segmentation, size, self.path, where)] = min(k, 255)
        return labels


def _first_dir(data: Path, names: Sequence[str], holds: str) -> Path | None:
    for name in names:
        if (data / name / holds).exists():
            return data / name
    return None


def prepared_set(data: Path, name: str) -> list[ImageEntry] | None:
    """Set ``name`` of the prepared layout (DATA itself, static/ or Static/), if there."""
    root = _first_dir(data, (".", *PREPARED_FOLDERS), f"JPEGImages/{name}")
    if root is None:
        return None
    images = root / "JPEGImages" / name
    files = sorted(images.glob("*.jpg")) + sorted(images.glob("*.png"))
    masks = root / "Annotations" / name
    return [_paired(name, f, masks / f"{f.stem}.png", PaletteLabels) for f in files]


def _paired(name: str, image: Path, mask: Path, kind: Callable[[Path], LabelSource]) -> ImageEntry:
    if not mask.is_file():
        raise InputError(mask, f"mask of {image.name} ({name}) is missing")
    return ImageEntry(f"static/{name}/{image.stem}", image, kind(mask))


def _saliency(name: str, images: Path, masks: Path) -> list[ImageEntry]:
    files = sorted(images.glob("*.jpg"))
    return [_paired(name, f, masks / f"{f.stem}.png", SaliencyLabels) for f in files]


def ecssd(data: Path) -> list[ImageEntry] | None:
    root = _first_dir(data, ("ECSSD", "ecssd"), "ground_truth_mask")
    if root is None:
        return None
    return _saliency("ECSSD", root / "images", root / "ground_truth_mask")


def msra10k(data: Path) -> list[ImageEntry] | None:
    root = _first_dir(data, ("MSRA10K", "msra10k", "."), "MSRA10K_Imgs_GT/Imgs")
    if root is None:
        return None
    folder = root / "MSRA10K_Imgs_GT" / "Imgs"
    return _saliency("MSRA10K", folder, folder)


def pascal_s(data: Path) -> list[ImageEntry] | None:
    root = _first_dir(data, ("PASCAL-S", "pascal-s", "PASCALS"), "datasets/masks/pascal")
    if root is None:
        return None
    datasets = root / "datasets"
    return _saliency("PASCAL-S", datasets / "imgs" / "pascal", datasets / "masks" / "pascal")


def pascal_voc(data: Path) -> list[ImageEntry] | None:
    names = ("VOCdevkit/VOC2012", "VOC2012", "PASCALVOC2012")
    root = _first_dir(data, names, "ImageSets/Segmentation/trainval.txt")
    if root is None:
        return None
    listing = root / "ImageSets" / "Segmentation" / "trainval.txt"
    stems = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
    return [
        _paired(
            "PASCALVOC2012",
            root / "JPEGImages" / f"{stem}.jpg",
            root / "SegmentationObject" / f"{stem}.png",
            lambda path: PaletteLabels(path, VOC_MAX_ID),
        )
        for stem in stems
    ]


def coco(data: Path) -> list[ImageEntry] | None:
    root = _first_dir(data, ("coco", "COCO"), "annotations")
    if root is None:
        return None
    found = []
    for split in ("val2017", "train2017"):  # the preparation's order
        path = root / "annotations" / f"instances_{split}.json"
        if path.is_file():
            found += _coco_split(load_json(path), path, root / split)
    return found or None


def _coco_split(meta: Any, path: Path, images: Path) -> list[ImageEntry]:
    if not isinstance(meta, dict) or not all(
        isinstance(meta.get(k), list) for k in ("images", "annotations")
    ):
        raise InputError(path, "not a COCO instances file (no 'images' and 'annotations' lists)")
    kept: dict[Any, list[Any]] = defaultdict(list)
    for annotation in meta["annotations"]:
        if not isinstance(annotation, dict) or "segmentation" not in annotation:
            raise InputError(path, f"annotation without a segmentation: {str(annotation)[:80]}")
        if annotation.get("area", 0) >= COCO_MIN_AREA:
            kept[annotation.get("image_id")].append(annotation["segmentation"])
    found = []
    for image in meta["images"]:
        if not isinstance(image, dict) or not {"id", "file_name", "height", "width"} <= set(image):
            raise InputError(
                path, f"image entry without id, file_name, height, width: {str(image)[:80]}"
            )
        if kept[image["id"]]:
            size = (int(image["height"]), int(image["width"]))
            labels = CocoLabels(path, image["id"], size, tuple(kept[image["id"]]))
            stem = Path(image["file_name"]).stem
            found.append(ImageEntry(f"static/COCO/{stem}", images / image["file_name"], labels))
    return found


DOWNLOADS: dict[str, Callable[[Path], list[ImageEntry] | None]] = {
    "COCO": coco,
    "ECSSD": ecssd,
    "MSRA10K": msra10k,
    "PASCAL-S": pascal_s,
    "PASCALVOC2012": pascal_voc,
}


def static_images(data: Path) -> list[ImageEntry]:
    """Every image of the sets present, set by set in STATIC_SETS order (prepared layout first;
    there .jpg then .png, sorted)."""
    found = []
    for name in STATIC_SETS:
        entries = prepared_set(data, name)
        found += entries if entries is not None else DOWNLOADS[name](data) or []
    if not found:
        raise InputError(
            data,
            f"no static image set here: expected static/JPEGImages/<set> (set in "
            f"{', '.join(STATIC_SETS)}) or a download: coco/annotations, ECSSD/, MSRA10K/, "
            "PASCAL-S/, VOCdevkit/VOC2012",
        )
    return found

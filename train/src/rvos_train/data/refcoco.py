"""RefCOCO, RefCOCO+ and RefCOCOg as the RVOS code bases train on them, read into referrals.

Layout under the COCO folder (``DATA/coco``)::

    train2014/COCO_train2014_<id>.jpg
    <set>/instances_<set>_train.json     set = refcoco, refcoco+, refcocog

The JSON files are MDETR's referring-expression annotations (``final_<set>_train.json``, renamed as
ReferFormer's and SOC's instructions do): COCO format with one image entry per sentence, the
sentence in the entry's ``caption``, and one annotation (polygons, ``bbox``, ``iscrowd``) of the
referred object. Each image entry is one referral, a one-frame video.

Upstream: github:RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85da0719b32ea45253f8b3077defea6,
soc_test/datasets/coco/ref2seq.py and refercoco.py (ModulatedDetection, ConvertCocoPolysToMask),
soc_test/datasets/concat_dataset.py (the paths), MUTR/datasets/refexp2seq.py. Known differences:
upstream keeps the non-crowd annotations with a positive box and asserts there is exactly one; here
another count is an InputError naming the file and the entry (``strict=False`` leaves the entry
out), and so are an entry whose image is not of the size it states and an empty segmentation.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from rvos_core.data.base import load_json
from rvos_core.errors import InputError
from rvos_train.data.referrals import Referral, SegmentationTarget, clean_caption

NAMES = ("refcoco", "refcoco+", "refcocog")
FOLDER_NAMES = ("coco", "COCO")


def find_root(data: Path) -> Path:
    """The COCO folder inside DATA (or DATA itself if it holds train2014/)."""
    for candidate in (data, *(data / name for name in FOLDER_NAMES)):
        if (candidate / "train2014").is_dir():
            return candidate
    raise InputError(
        data, f"no COCO here: expected one of {', '.join(FOLDER_NAMES)} holding train2014/"
    )


def annotation_path(root: Path, name: str) -> Path:
    return root / name / f"instances_{name}_train.json"


def referrals(data: Path, name: str, strict: bool) -> list[Referral]:
    """One referral per image entry of set ``name`` found in ``data``, in file order.

    An entry without exactly one usable annotation (non-crowd, positive box) is an InputError when
    ``strict``, left out otherwise.
    """
    root = find_root(data)
    path = annotation_path(root, name)
    coco = load_json(path)
    images, annotations = (_list(coco, key, path) for key in ("images", "annotations"))
    usable = _usable_annotations(annotations, path)
    found = []
    for entry in images:
        entry_id = _field(entry, "id", path, "image entry")
        where = f"image entry {entry_id}"
        objects = usable.get(entry_id, [])
        if len(objects) == 1:
            found.append(_referral(name, entry, objects[0], root, path, where))
        elif strict:
            raise InputError(
                path,
                f"{where}: {len(objects)} usable annotations (non-crowd, positive box), "
                "the referred object needs exactly one (strict=False leaves the entry out)",
            )
    return found


def _referral(
    name: str, entry: dict, annotation: dict, root: Path, path: Path, where: str
) -> Referral:
    size = (int(_field(entry, "height", path, where)), int(_field(entry, "width", path, where)))
    segmentation = _field(annotation, "segmentation", path, where)
    return Referral(
        source=f"{name}/{entry['id']}",
        caption=clean_caption(str(_field(entry, "caption", path, where))),
        frames=(root / "train2014" / str(_field(entry, "file_name", path, where)),),
        present=frozenset({0}),
        target=SegmentationTarget(segmentation, size, path, where),
    )


def _usable_annotations(annotations: list[Any], path: Path) -> dict[Any, list[dict]]:
    """image id -> its annotations that are not crowds and have a box of positive size."""
    usable: dict[Any, list[dict]] = defaultdict(list)
    for annotation in annotations:
        image_id = _field(annotation, "image_id", path, "annotation")
        box = _field(annotation, "bbox", path, f"annotation of image entry {image_id}")
        if not annotation.get("iscrowd") and len(box) == 4 and box[2] > 0 and box[3] > 0:
            usable[image_id].append(annotation)
    return usable


def _list(coco: Any, key: str, path: Path) -> list[Any]:
    value = coco.get(key) if isinstance(coco, dict) else None
    if not isinstance(value, list):
        raise InputError(path, f"no {key!r} list (a COCO-format referring-expression file)")
    return value


def _field(entry: Any, key: str, path: Path, where: str) -> Any:
    if not isinstance(entry, dict) or key not in entry:
        raise InputError(path, f"{where}: no {key!r}")
    return entry[key]

"""Helpers shared by the eval tests: tiny datasets written on the fly, number comparison."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

from rvos_core.data import Dataset, open_dataset
from rvos_core.runfolder import RunWriter, VideoResult

RUN_META = {"producer": "test", "value_domain": "binary", "has_scores": False, "has_probs": False}


def close(expected: float | None, got: float | None, tol: float) -> bool:
    """``expected`` equals ``got`` within ``tol``. NaN, which JSON files write as null (read as
    None: the parity files and our summary.json), equals NaN or null only."""
    want, have = _number(expected), _number(got)
    if math.isnan(want) or math.isnan(have):
        return math.isnan(want) and math.isnan(have)
    return abs(want - have) <= tol


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO RLE of bool [H, W] with string counts, as mask_dict.json stores it."""
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in encoded["size"]], "counts": encoded["counts"].decode()}


def write_mevis(
    data: Path,
    videos: dict[str, dict[str, Any]],
    annos: dict[str, list[np.ndarray | None]],
    split: str = "valid_u",
) -> Dataset:
    """A MeViS split under ``data/mevis/<split>``: meta from ``videos`` (meta entries), mask_dict
    from ``annos`` (anno_id -> per-frame bool [H, W] or None). No frames are needed to evaluate.
    """
    folder = data / "mevis" / split
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta_expressions.json").write_text(json.dumps({"videos": videos}))
    masks = {a: [None if m is None else rle(m) for m in frames] for a, frames in annos.items()}
    (folder / "mask_dict.json").write_text(json.dumps(masks))
    return open_dataset("mevis", data, split)


def write_run(root: Path, dataset: Dataset, masks: dict[str, dict[str, np.ndarray]]) -> Path:
    """A complete run folder: ``masks[video][exp_id]`` = bool [T, H, W]."""
    writer = RunWriter(root, dataset, RUN_META)
    for video in dataset:
        writer.write_video(video, VideoResult(masks=masks[video.id]))
    assert writer.finalize()
    return root


def write_gray(path: Path, pixels: np.ndarray) -> None:
    """An 8-bit single-channel PNG of uint8 [H, W]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), pixels.astype(np.uint8))


def write_indexed(path: Path, labels: np.ndarray) -> None:
    """A palette PNG of uint8 labels [H, W] (as the DAVIS annotations are stored)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    image.save(path)


def write_davis(root: Path, split: str, annotations: str, sequences: dict[str, np.ndarray]) -> Path:
    """A DAVIS folder: ImageSets/2017/<split>.txt and <annotations>/480p/<seq>/<t:05d>.png."""
    (root / "ImageSets" / "2017").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "2017" / f"{split}.txt").write_text("\n".join(sequences) + "\n")
    for name, labels in sequences.items():
        write_labels(root / annotations / "480p" / name, labels)
    return root


def write_labels(folder: Path, labels: np.ndarray) -> None:
    """Indexed PNGs <folder>/<t:05d>.png of labels uint8 [T, H, W]."""
    for t, frame in enumerate(labels):
        write_indexed(folder / f"{t:05d}.png", frame)


def write_refdavis(data: Path, videos: dict[str, tuple[int, np.ndarray]]) -> Dataset:
    """A Ref-DAVIS17 valid split (ReferFormer's layout) under data/ref-davis.

    ``videos[id] = (objects, gt)``: four expressions per object, ground truth labels uint8
    [T, H, W] written as indexed Annotations PNGs, black JPEG frames.
    """
    root = data / "ref-davis"
    meta: dict[str, Any] = {"videos": {}}
    for video, (objects, gt) in videos.items():
        frames = [f"{t:05d}" for t in range(gt.shape[0])]
        expressions = {
            str(4 * k + a): {"exp": f"object {k + 1}", "obj_id": str(k + 1)}
            for k in range(objects)
            for a in range(4)
        }
        meta["videos"][video] = {"expressions": expressions, "frames": frames}
        write_labels(root / "valid" / "Annotations" / video, gt)
        for name in frames:
            write_gray(root / "valid" / "JPEGImages" / video / f"{name}.jpg", gt[0] * 0)
    meta_file = root / "meta_expressions" / "valid" / "meta_expressions.json"
    meta_file.parent.mkdir(parents=True, exist_ok=True)
    meta_file.write_text(json.dumps(meta))
    return open_dataset("refdavis", data, "valid")

"""Small generated Ref-YouTube-VOS-style (and MeViS-style) datasets: for tests, benchmarks and the
demo.

Each video holds a few objects (ellipses moving along straight lines over a textured background);
expressions 2i and 2i+1 describe object i (the pairing Ref-YouTube-VOS has), an odd count leaves the
last expression alone on its object. Frames are named like the dataset's (00000, 00005, ...).
Everything is a deterministic function of the arguments.

The training layouts (``write_refytvos_train``, ``write_mevis_train``, ``write_refcoco``) annotate
what the frames show: object i carries label i + 1 where it is visible (a later object hides an
earlier one), and every odd expression says on which side of the frame its object starts ("the red
object on the left"), so that a horizontal flip has words to swap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from rvos_core.palette import write_label_png

COLOURS = ("red", "green", "blue", "yellow", "white", "purple")


@dataclass(frozen=True)
class VideoSpec:
    """One generated video: id, number of expressions, number of frames, frame size (H, W)."""

    id: str
    expressions: int
    frames: int
    size: tuple[int, int]

    @property
    def objects(self) -> int:
        return (self.expressions + 1) // 2

    @property
    def frame_names(self) -> list[str]:
        return [f"{5 * t:05d}" for t in range(self.frames)]


def object_masks(spec: VideoSpec, seed: int = 0) -> np.ndarray:
    """bool [objects, T, H, W]: object i is an ellipse moving on a straight line."""
    rng = np.random.default_rng([seed, *map(ord, spec.id)])
    height, width = spec.size
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    masks = np.zeros((spec.objects, spec.frames, height, width), bool)
    for k in range(spec.objects):
        centre = rng.uniform(0.25, 0.75, 2) * (height, width)
        step = rng.uniform(-0.03, 0.03, 2) * (height, width)
        radii = rng.uniform(0.08, 0.2, 2) * (height, width)
        for t in range(spec.frames):
            cy, cx = centre + t * step
            masks[k, t] = ((yy - cy) / radii[0]) ** 2 + ((xx - cx) / radii[1]) ** 2 <= 1.0
    return masks


def expression_masks(spec: VideoSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """Ground truth per expression id: bool [T, H, W] of its object (2i, 2i+1 -> object i)."""
    objects = object_masks(spec, seed)
    return {str(e): objects[e // 2] for e in range(spec.expressions)}


def _meta_entry(spec: VideoSpec) -> dict:
    expressions = {
        str(e): {"exp": f"the {COLOURS[(e // 2) % len(COLOURS)]} blob, take {e % 2 + 1}"}
        for e in range(spec.expressions)
    }
    return {"expressions": expressions, "frames": spec.frame_names}


def _render_frames(spec: VideoSpec, seed: int) -> np.ndarray:
    """uint8 [T, H, W, 3]: the objects painted in order over a textured background (a later
    object hides an earlier one, as ``label_maps`` says)."""
    objects = object_masks(spec, seed)
    rng = np.random.default_rng([seed, 7, *map(ord, spec.id)])
    background = rng.integers(40, 90, (*spec.size, 3), dtype=np.uint8)
    palette = rng.integers(120, 255, (spec.objects, 3), dtype=np.uint8)
    frames = np.repeat(background[None], spec.frames, axis=0)
    for k in range(spec.objects):
        frames[objects[k]] = palette[k]
    return frames


def write_jpegs(folder: Path, names: list[str], frames: np.ndarray) -> None:
    """Frames uint8 [T, H, W, 3] as ``folder/<name>.jpg`` (quality 90), one per name."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in zip(names, frames, strict=True):
        Image.fromarray(frame).save(folder / f"{name}.jpg", quality=90)


def _write_frames(folder: Path, spec: VideoSpec, seed: int) -> None:
    write_jpegs(folder, spec.frame_names, _render_frames(spec, seed))


def write_refytvos(
    root: Path, split: str, specs: list[VideoSpec], seed: int = 0, frames: bool = True
) -> Path:
    """Write a Ref-YouTube-VOS-style split under ``root`` (meta, and JPEG frames if asked).

    Returns the benchmark folder (``root/refer_youtube_vos``).
    """
    bench = root / "refer_youtube_vos"
    meta = {"videos": {s.id: _meta_entry(s) for s in specs}}
    meta_file = bench / "meta_expressions" / split / "meta_expressions.json"
    meta_file.parent.mkdir(parents=True, exist_ok=True)
    meta_file.write_text(json.dumps(meta, indent=1))
    if frames:
        for spec in specs:
            _write_frames(bench / split / "JPEGImages" / spec.id, spec, seed)
    return bench


def write_mevis(root: Path, split: str, specs: list[VideoSpec], seed: int = 0) -> Path:
    """Write a MeViS-style split without ground truth (``valid``, ``test``) under ``root``: JPEG
    frames and meta_expressions.json (expression e on object e // 2, as above). Returns the
    benchmark folder (``root/mevis``)."""
    bench = root / "mevis"
    videos = {}
    for spec in specs:
        entry = _meta_entry(spec)
        for e, expression in entry["expressions"].items():
            expression.update(obj_id=[int(e) // 2], anno_id=[int(e) // 2])
        videos[spec.id] = entry
        _write_frames(bench / split / "JPEGImages" / spec.id, spec, seed)
    (bench / split / "meta_expressions.json").write_text(json.dumps({"videos": videos}, indent=1))
    return bench


def label_maps(spec: VideoSpec, seed: int = 0) -> np.ndarray:
    """uint8 [T, H, W]: 0 background, i + 1 where object i is visible (painted in order, as the
    frames are)."""
    labels = np.zeros((spec.frames, *spec.size), np.uint8)
    for k, mask in enumerate(object_masks(spec, seed)):
        labels[mask] = k + 1
    return labels


def _train_caption(e: int, labels: np.ndarray) -> str:
    """Expression e (object e // 2): plain when even, with the object's starting side when odd."""
    colour = COLOURS[(e // 2) % len(COLOURS)]
    if e % 2 == 0:
        return f"the {colour} blob"
    visible = np.flatnonzero((labels == e // 2 + 1).any(axis=(1, 2)))
    columns = np.nonzero(labels[visible[0]] == e // 2 + 1)[1] if visible.size else np.zeros(1)
    side = "left" if columns.mean() < labels.shape[2] / 2 else "right"
    return f"the {colour} object on the {side}"


def write_refytvos_train(root: Path, specs: list[VideoSpec], seed: int = 0) -> Path:
    """Write a Ref-YouTube-VOS-style train split under ``root``: JPEG frames, palette
    ``Annotations`` (pixel = object id, 1-based), ``train/meta.json`` (objects -> category and the
    frames showing them) and ``meta_expressions/train`` (expression e on object e // 2 + 1).

    Returns the benchmark folder (``root/refer_youtube_vos``).
    """
    bench = root / "refer_youtube_vos"
    objects, expressions = {}, {}
    for spec in specs:
        labels = label_maps(spec, seed)
        _write_frames(bench / "train" / "JPEGImages" / spec.id, spec, seed)
        folder = bench / "train" / "Annotations" / spec.id
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame_labels in zip(spec.frame_names, labels, strict=True):
            write_label_png(folder / f"{name}.png", frame_labels)
        objects[spec.id] = {"objects": _object_entries(spec, labels)}
        exps = {
            str(e): {"exp": _train_caption(e, labels), "obj_id": str(e // 2 + 1)}
            for e in range(spec.expressions)
        }
        expressions[spec.id] = {"expressions": exps, "frames": spec.frame_names}
    (bench / "train" / "meta.json").write_text(json.dumps({"videos": objects}, indent=1))
    meta_file = bench / "meta_expressions" / "train" / "meta_expressions.json"
    meta_file.parent.mkdir(parents=True, exist_ok=True)
    meta_file.write_text(json.dumps({"videos": expressions}, indent=1))
    return bench


def _object_entries(spec: VideoSpec, labels: np.ndarray) -> dict[str, dict]:
    """meta.json's ``objects`` of one video: id -> {category, frames in which it is visible}."""
    shown = labels.reshape(spec.frames, -1)
    return {
        str(k + 1): {
            "category": "blob",
            "frames": [n for t, n in enumerate(spec.frame_names) if (shown[t] == k + 1).any()],
        }
        for k in range(spec.objects)
    }


def rle_encode(mask: np.ndarray) -> dict:
    """COCO compressed RLE of bool [H, W] (column-major runs, starting with zeros), as MeViS's
    ``mask_dict.json`` stores it: {"size": [H, W], "counts": str}."""
    flat = np.asarray(mask, bool).ravel(order="F")
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], edges, [flat.size]))
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs.insert(0, 0)
    chars = []
    for i, run in enumerate(runs):
        value = run - runs[i - 2] if i > 2 else run
        more = True
        while more:
            chunk = value & 0x1F
            value >>= 5
            more = value != -1 if chunk & 0x10 else value != 0
            chars.append(chr(chunk + (0x20 if more else 0) + 48))
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": "".join(chars)}


def write_mevis_train(
    root: Path, specs: list[VideoSpec], seed: int = 0, split: str = "train"
) -> Path:
    """Write a MeViS-style split with ground truth (train, valid_u) under ``root``: JPEG frames,
    ``meta_expressions.json`` (expression e on object e // 2; a video with two or more objects
    also gets one expression on objects 0 and 1 together) and ``mask_dict.json`` (anno_id -> one RLE per frame, null where the
    object is not visible). Anno ids count objects over all videos. Returns ``root/mevis``.
    """
    bench = root / "mevis"
    videos, mask_dict = {}, {}
    for spec in specs:
        labels = label_maps(spec, seed)
        annos = [str(len(mask_dict) + k) for k in range(spec.objects)]
        for k, anno in enumerate(annos):
            mask_dict[anno] = [rle_encode(m) if m.any() else None for m in labels == k + 1]
        exps = {
            str(e): {
                "exp": _train_caption(e, labels),
                "obj_id": [e // 2],
                "anno_id": [annos[e // 2]],
            }
            for e in range(spec.expressions)
        }
        if spec.objects >= 2:
            both = f"the {COLOURS[0]} and {COLOURS[1]} blobs"
            exps[str(spec.expressions)] = {"exp": both, "obj_id": [0, 1], "anno_id": annos[:2]}
        videos[spec.id] = {"expressions": exps, "frames": spec.frame_names}
        _write_frames(bench / split / "JPEGImages" / spec.id, spec, seed)
    (bench / split / "meta_expressions.json").write_text(json.dumps({"videos": videos}, indent=1))
    (bench / split / "mask_dict.json").write_text(json.dumps(mask_dict))
    return bench


def _polygon(mask: np.ndarray) -> list[float]:
    """The outline of the largest blob of bool [H, W] as a COCO polygon [x0, y0, x1, y1, ...]."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    outline = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(float)
    return (outline + 0.5).ravel().tolist()


def write_refcoco(root: Path, name: str, specs: list[VideoSpec], seed: int = 0) -> Path:
    """Write a RefCOCO-style set ``name`` (refcoco, refcoco+, refcocog) as the RVOS code bases read
    it: ``coco/train2014/COCO_train2014_<n>.jpg`` (the first frame of spec n) and
    ``coco/<name>/instances_<name>_train.json``, COCO-format with one image entry per sentence
    (MDETR's layout: ``caption`` on the image entry, one polygon annotation of the referred object).
    Expression e of a spec refers to object e // 2. Returns ``root/coco``.
    """
    bench = root / "coco"
    (bench / "train2014").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for n, spec in enumerate(specs, 1):
        file_name = f"COCO_train2014_{n:012d}.jpg"
        Image.fromarray(_render_frames(spec, seed)[0]).save(
            bench / "train2014" / file_name, quality=90
        )
        labels = label_maps(spec, seed)[:1]
        for e in range(spec.expressions):
            entry_id = len(images)
            images.append(
                {
                    "id": entry_id,
                    "file_name": file_name,
                    "height": spec.size[0],
                    "width": spec.size[1],
                    "caption": _train_caption(e, labels),
                    "dataset_name": name,
                    "original_img_id": n,
                }
            )
            annotations.append(coco_annotation(entry_id, labels[0] == e // 2 + 1))
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "blob"}]}
    (bench / name).mkdir(parents=True, exist_ok=True)
    (bench / name / f"instances_{name}_train.json").write_text(json.dumps(coco))
    return bench


def coco_annotation(entry_id: int, mask: np.ndarray) -> dict:
    """The COCO annotation of bool [H, W] for image entry ``entry_id`` (category 1): box, area and
    the polygon of its largest blob."""
    rows, cols = np.nonzero(mask)
    x, y = int(cols.min()), int(rows.min())
    bbox = [x, y, int(cols.max()) + 1 - x, int(rows.max()) + 1 - y]
    return {
        "id": entry_id,
        "image_id": entry_id,
        "category_id": 1,
        "iscrowd": 0,
        "bbox": bbox,
        "area": int(mask.sum()),
        "segmentation": [_polygon(mask)],
    }


def write_training_data(root: Path, specs: list[VideoSpec], seed: int = 0) -> Path:
    """A DATA folder with every training layout made from ``specs``: Ref-YouTube-VOS train, MeViS
    train, and RefCOCO, RefCOCO+ and RefCOCOg (sharing their images). Returns ``root``."""
    write_refytvos_train(root, specs, seed)
    write_mevis_train(root, specs, seed)
    for name in ("refcoco", "refcoco+", "refcocog"):
        write_refcoco(root, name, specs, seed)
    return root


def write_davis(root: Path, splits: dict[str, list[VideoSpec]], seed: int = 0) -> Path:
    """Write a DAVIS-2017-style semi-supervised set under ``root/DAVIS``: ``JPEGImages/480p`` and
    palette ``Annotations/480p`` (pixel = object id) per sequence, frames 00000, 00001, ..., and
    ``ImageSets/2017/<split>.txt`` for each split of ``splits`` (split -> its videos). Returns
    the DAVIS folder."""
    davis = root / "DAVIS"
    lists = davis / "ImageSets" / "2017"
    lists.mkdir(parents=True, exist_ok=True)
    for split, specs in splits.items():
        for spec in specs:
            write_davis_sequence(davis, spec.id, _render_frames(spec, seed), label_maps(spec, seed))
        (lists / f"{split}.txt").write_text("".join(f"{s.id}\n" for s in specs))
    return davis


def write_davis_sequence(
    davis: Path, video_id: str, frames: np.ndarray, labels: np.ndarray
) -> None:
    """One DAVIS sequence: frames uint8 [T, H, W, 3] and labels uint8 [T, H, W] (pixel = object
    id) as ``JPEGImages/480p/<video>/<t>.jpg`` and ``Annotations/480p/<video>/<t>.png``."""
    names = [f"{t:05d}" for t in range(len(frames))]
    write_jpegs(davis / "JPEGImages" / "480p" / video_id, names, frames)
    annotations = davis / "Annotations" / "480p" / video_id
    annotations.mkdir(parents=True, exist_ok=True)
    for name, frame_labels in zip(names, labels, strict=True):
        write_label_png(annotations / f"{name}.png", frame_labels)

"""The world's videos written in the real datasets' layouts, as the project's readers open them.

Under one DATA folder (docs/world.md has the tree)::

    refer_youtube_vos/  train (Annotations, meta.json), valid (+ the world's ground truth: the same
                        Annotations and meta.json, and obj_id in the valid meta), test; the valid
                        meta lists the valid and the test videos, as the 2021 download does
    mevis/              train and valid_u (mask_dict.json), valid (no ground truth)
    ref-davis/          train, valid: four expressions per object shown in the first frame
    coco/               train2014 + refcoco, refcoco+, refcocog: the first frames of the train videos
    DAVIS/              DAVIS-2017 for the propagators: train = the train videos, val = the valid ones

Object k of a video is label k + 1 in Ref-YouTube-VOS annotations; DAVIS and Ref-DAVIS number
only the objects shown in the first frame (their protocols count the objects of the first frame),
and Ref-DAVIS describes those. Expressions of every layout are drawn from
``video_rng(seed, video, layout)``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rvos_core.atomic import write_json
from rvos_core.errors import ConfigError
from rvos_core.palette import write_label_png
from rvos_core.synthetic import (
    coco_annotation,
    rle_encode,
    write_davis_sequence,
    write_jpegs,
)
from rvos_core.world import VERSION, Video, draw_video, video_rng
from rvos_core.world.grammar import (
    Sentence,
    image_sentence,
    motion_sentences,
    object_sentences,
)

REFYTVOS = "refer_youtube_vos"
REFYTVOS_STEP = 5  # Ref-YouTube-VOS names frames 00000, 00005, ... (every fifth frame is annotated)
MEVIS_EXPRESSIONS = 5  # motion expressions per MeViS video (plus one with no target in valid_u)
REFDAVIS_RUNS = 4  # expressions per object: 2 annotators x first-frame / full-video
REFCOCO_SETS = ("refcoco", "refcoco+", "refcocog")
RECORD = "world.json"


def frame_names(count: int, step: int) -> list[str]:
    """Frame names 00000, 0000<step>, ... as the datasets name frames (Ref-YouTube-VOS: step 5)."""
    return [f"{step * t:05d}" for t in range(count)]


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1))


def _write_labels(folder: Path, names: list[str], labels: np.ndarray) -> None:
    """Palette PNGs ``folder/<name>.png`` of labels uint8 [T, H, W]."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame_labels in zip(names, labels, strict=True):
        write_label_png(folder / f"{name}.png", frame_labels)


def _pair_expressions(video: Video, seed: int, with_objects: bool) -> dict[str, dict]:
    """Ref-YouTube-VOS expressions: 2k and 2k + 1 describe object k (obj_id k + 1 if asked)."""
    rng = video_rng(seed, video.id, "refytvos")
    found: dict[str, dict] = {}
    for k in range(len(video.things)):
        for sentence in object_sentences(k, video.things, rng, 2):
            entry = {"exp": sentence.text}
            if with_objects:
                entry["obj_id"] = str(k + 1)
            found[str(len(found))] = entry
    return found


def _object_frames(video: Video, names: list[str]) -> dict[str, dict]:
    """meta.json's objects of one video: id -> {category (the shape), frames showing it}."""
    return {
        str(k + 1): {
            "category": thing.shape,
            "frames": [names[t] for t in np.flatnonzero(video.visible(k).any(axis=(1, 2)))],
        }
        for k, thing in enumerate(video.things)
    }


def _write_refytvos_split(bench: Path, split: str, videos: Sequence[Video], truth: bool) -> None:
    """Frames (and with ``truth`` Annotations and meta.json) of one Ref-YouTube-VOS split."""
    objects = {}
    for video in videos:
        names = frame_names(len(video.frames), REFYTVOS_STEP)
        write_jpegs(bench / split / "JPEGImages" / video.id, names, video.frames)
        if truth:
            _write_labels(bench / split / "Annotations" / video.id, names, video.labels)
            objects[video.id] = {"objects": _object_frames(video, names)}
    if truth:
        _write_json(bench / split / "meta.json", {"videos": objects})


def write_refytvos(
    root: Path, train: Sequence[Video], valid: Sequence[Video], test: Sequence[Video], seed: int
) -> Path:
    """Ref-YouTube-VOS (see the module docstring) under ``root``; returns the benchmark folder."""
    bench = root / REFYTVOS
    metas: dict[str, dict] = {"train": {}, "valid": {}, "test": {}}
    for split, videos, truth in (
        ("train", train, True),
        ("valid", valid, True),
        ("test", test, False),
    ):
        _write_refytvos_split(bench, split, videos, truth)
        for video in videos:
            entry = {
                "expressions": _pair_expressions(video, seed, truth),
                "frames": frame_names(len(video.frames), REFYTVOS_STEP),
            }
            metas[split][video.id] = entry
            if split == "test":
                metas["valid"][video.id] = entry
    for split, videos in metas.items():
        _write_json(
            bench / "meta_expressions" / split / "meta_expressions.json", {"videos": videos}
        )
    return bench


def _mevis_entry(sentence: Sentence, annos: list[str] | None) -> dict:
    entry: dict[str, Any] = {"exp": sentence.text}
    if annos is not None:
        entry.update(obj_id=list(sentence.targets), anno_id=[annos[k] for k in sentence.targets])
    return entry


def write_mevis(
    root: Path, split: str, videos: Sequence[Video], seed: int, truth: bool, no_target: bool
) -> Path:
    """A MeViS split under ``root/mevis``: frames, motion expressions (``no_target``: one that
    refers to nothing per video) and, with ``truth``, obj_id / anno_id and mask_dict.json (one
    RLE per frame, null where the object does not show). Returns the benchmark folder."""
    bench = root / "mevis"
    metas, mask_dict = {}, {}
    for video in videos:
        names = frame_names(len(video.frames), 1)
        write_jpegs(bench / split / "JPEGImages" / video.id, names, video.frames)
        annos = [str(len(mask_dict) + k) for k in range(len(video.things))]
        for k, anno in enumerate(annos):
            mask_dict[anno] = [rle_encode(m) if m.any() else None for m in video.visible(k)]
        rng = video_rng(seed, video.id, "mevis")
        sentences = motion_sentences(video.things, rng, MEVIS_EXPRESSIONS, no_target)
        expressions = {
            str(e): _mevis_entry(s, annos if truth else None) for e, s in enumerate(sentences)
        }
        metas[video.id] = {"expressions": expressions, "frames": names}
    _write_json(bench / split / "meta_expressions.json", {"videos": metas})
    if truth:
        _write_json(bench / split / "mask_dict.json", mask_dict)
    return bench


def first_frame_objects(video: Video) -> list[int]:
    """The objects DAVIS and Ref-DAVIS annotate, as labels 1, 2, ...: those shown in the first
    frame (the DAVIS protocols count the objects of the first frame)."""
    return [k for k in range(len(video.things)) if video.visible(k)[0].any()]


def first_frame_labels(video: Video) -> np.ndarray:
    """uint8 [T, H, W]: first_frame_objects()[j] as label j + 1, everything else 0."""
    described = first_frame_objects(video)
    relabel = np.zeros(len(video.things) + 1, np.uint8)
    relabel[[k + 1 for k in described]] = np.arange(1, len(described) + 1)
    return relabel[video.labels]


def write_refdavis(root: Path, split: str, videos: Sequence[Video], seed: int) -> Path:
    """A Ref-DAVIS17 split (ReferFormer's conversion) under ``root/ref-davis``: frames,
    Annotations (first_frame_labels) and expressions 4j + a of the object labelled j + 1,
    a = first-frame (appearance) and full-video (motion) of two annotators."""
    bench = root / "ref-davis"
    metas = {}
    for video in videos:
        names = frame_names(len(video.frames), 1)
        write_jpegs(bench / split / "JPEGImages" / video.id, names, video.frames)
        _write_labels(bench / split / "Annotations" / video.id, names, first_frame_labels(video))
        rng = video_rng(seed, video.id, "refdavis")
        expressions = {}
        for j, k in enumerate(first_frame_objects(video)):
            for sentence in object_sentences(k, video.things, rng, REFDAVIS_RUNS):
                expressions[str(len(expressions))] = {"exp": sentence.text, "obj_id": str(j + 1)}
        metas[video.id] = {"expressions": expressions, "frames": names}
    _write_json(bench / "meta_expressions" / split / "meta_expressions.json", {"videos": metas})
    return bench


def _image_entries(
    video: Video, n: int, name: str, seed: int
) -> list[tuple[dict[str, Any], np.ndarray]]:
    """Image entries (without id) and target masks bool [H, W] of the first frame of ``video``."""
    shown = [k for k in range(len(video.things)) if video.shown(k)[0]]
    rng = video_rng(seed, video.id, name)
    height, width = video.labels.shape[1:]
    found = []
    for k in shown:
        sentence = image_sentence(k, video.things, shown, rng)
        if sentence is None:
            continue
        entry = {
            "file_name": f"COCO_train2014_{n:012d}.jpg",
            "height": height,
            "width": width,
            "caption": sentence.text,
            "dataset_name": name,
            "original_img_id": n,
        }
        found.append((entry, video.visible(k)[0]))
    return found


def write_refcoco(root: Path, videos: Sequence[Video], seed: int) -> Path:
    """RefCOCO, RefCOCO+ and RefCOCOg (MDETR's layout, one image entry per sentence) of one-frame
    pseudo-videos: the first frame of each video, an appearance expression of each object it
    shows that its appearance singles out there. Returns ``root/coco``."""
    bench = root / "coco"
    for n, video in enumerate(videos, 1):
        write_jpegs(bench / "train2014", [f"COCO_train2014_{n:012d}"], video.frames[:1])
    for name in REFCOCO_SETS:
        images, annotations = [], []
        for n, video in enumerate(videos, 1):
            for entry, mask in _image_entries(video, n, name, seed):
                images.append({"id": len(images), **entry})
                annotations.append(coco_annotation(images[-1]["id"], mask))
        coco = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": 1, "name": "object"}],
        }
        _write_json(bench / name / f"instances_{name}_train.json", coco)
    return bench


def write_davis(root: Path, splits: dict[str, Sequence[Video]]) -> Path:
    """DAVIS-2017 (semi-supervised layout, first_frame_labels) under ``root/DAVIS``, one
    ImageSets/2017/<split>.txt per split. Returns the DAVIS folder."""
    davis = root / "DAVIS"
    for split, videos in splits.items():
        for video in videos:
            write_davis_sequence(davis, video.id, video.frames, first_frame_labels(video))
        lists = davis / "ImageSets" / "2017" / f"{split}.txt"
        lists.parent.mkdir(parents=True, exist_ok=True)
        lists.write_text("".join(f"{v.id}\n" for v in videos))
    return davis


def write_world(
    root: Path, seed: int, counts: dict[str, int], frames: int, size: tuple[int, int]
) -> dict[str, list[Video]]:
    """Draw ``counts`` ("train", "valid", "test" -> videos, ids <split>000, ...) and write every
    layout under ``root``. Returns the videos of each split."""
    videos = {
        split: [draw_video(seed, f"{split}{i:03d}", frames, size) for i in range(count)]
        for split, count in counts.items()
    }
    train, valid, test = videos["train"], videos["valid"], videos["test"]
    write_refytvos(root, train, valid, test, seed)
    write_mevis(root, "train", train, seed, truth=True, no_target=False)
    write_mevis(root, "valid_u", valid, seed, truth=True, no_target=True)
    write_mevis(root, "valid", test, seed, truth=False, no_target=True)
    write_refdavis(root, "train", train, seed)
    write_refdavis(root, "valid", valid, seed)
    write_refcoco(root, train, seed)
    write_davis(root, {"train": train, "val": valid})
    return videos


def generate(
    out: Path, *, seed: int, counts: dict[str, int], frames: int, size: tuple[int, int]
) -> Path:
    """Write the world under ``out`` with ``world.json`` (the version and the options), whole or
    not at all (staged, then renamed). A second call with the same options does nothing; a folder
    of other options or version, or one that holds anything else, is a ConfigError (nothing is
    overwritten). Returns ``out``."""
    settings = {
        "version": VERSION,
        "seed": seed,
        "videos": counts,
        "frames": frames,
        "size": list(size),
    }
    record = out / RECORD
    if record.is_file():
        if json.loads(record.read_text()) != settings:
            raise ConfigError(f"{out} holds a world of other options or version ({record})")
        return out
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} is not empty and holds no {RECORD}: choose another --out")
    staging = out.with_name(f".{out.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    write_world(staging, seed, counts, frames, size)
    write_json(staging / RECORD, settings)
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(out)
    return out

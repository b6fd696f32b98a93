"""Ref-YouTube-VOS train split as distributed, read into referrals.

Layout under the benchmark folder (found in DATA as rvos_core.data.refytvos finds it)::

    meta_expressions/train/meta_expressions.json   videos -> {frames, expressions -> {exp, obj_id}}
    train/JPEGImages/<video>/<frame>.jpg
    train/Annotations/<video>/<frame>.png           palette PNG, pixel value = object id
    train/meta.json                                 videos -> objects -> {category, frames}

Upstream: github:RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85da0719b32ea45253f8b3077defea6,
ReferFormer/datasets/ytvos.py (YTVOSDataset.prepare_metas, __getitem__) and
soc_test/datasets/refer_youtube_vos/refer_youtube_vos_dataset.py. Frames are the meta's, sorted.
Known differences: an obj_id that meta.json does not know is an InputError here (upstream: a
KeyError in ReferFormer, a silently skipped expression in SOC); so is an object that meta.json shows
in no frame (upstream: resampled away at every read, or skipped), unless ``strict`` is off, which
leaves such expressions out. The frames meta.json lists for the object are the frames where its
mask must not be empty (checked when read).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rvos_core.data import Video, open_dataset
from rvos_core.data.base import load_json
from rvos_core.errors import InputError
from rvos_train.data.referrals import PaletteTarget, Referral, clean_caption, keep_visible


def referrals(data: Path, strict: bool) -> list[Referral]:
    """One referral per expression of the train split found in ``data``, in video, then meta order.

    An expression whose object meta.json shows in no frame is an InputError when ``strict``, left
    out otherwise.
    """
    dataset = open_dataset("refytvos", data, "train")
    objects_path = dataset.root / "train" / "meta.json"
    objects = _object_frames(load_json(objects_path), objects_path)
    found = []
    for video in dataset:
        if video.id not in objects:
            raise InputError(objects_path, f"video {video.id} of {dataset.meta_path} is missing")
        annotations = dataset.root / "train" / "Annotations" / video.id
        found += _video_referrals(video, objects[video.id], annotations, dataset.meta_path)
    return keep_visible(found, strict, objects_path)


def _video_referrals(
    video: Video, objects: dict[int, set[str]], annotations: Path, meta_path: Path
) -> list[Referral]:
    frames = tuple(sorted(video.frames))
    paths = tuple(video.frame_path(f) for f in frames)
    masks = tuple(annotations / f"{f}.png" for f in frames)
    found = []
    for expression in video.expressions:
        where = f"video {video.id}, expression {expression.id}"
        if len(expression.obj_ids) != 1:
            raise InputError(meta_path, f"{where}: needs one obj_id, has {expression.obj_ids}")
        obj_id = expression.obj_ids[0]
        if obj_id not in objects:
            known = ", ".join(map(str, sorted(objects))) or "none"
            raise InputError(
                meta_path, f"{where}: obj_id {obj_id} is not an object of train/meta.json ({known})"
            )
        present = frozenset(t for t, f in enumerate(frames) if f in objects[obj_id])
        found.append(
            Referral(
                source=f"refytvos/{video.id}/{expression.id}",
                caption=clean_caption(expression.text),
                frames=paths,
                present=present,
                target=PaletteTarget(masks, obj_id),
            )
        )
    return found


def _object_frames(meta: Any, path: Path) -> dict[str, dict[int, set[str]]]:
    """video -> object id -> the frames meta.json shows it in."""
    videos = meta.get("videos") if isinstance(meta, dict) else None
    if not isinstance(videos, dict):
        raise InputError(path, "no 'videos' object")
    return {video_id: _objects(entry, path, video_id) for video_id, entry in videos.items()}


def _objects(entry: Any, path: Path, video_id: str) -> dict[int, set[str]]:
    objects = entry.get("objects") if isinstance(entry, dict) else None
    if not isinstance(objects, dict):
        raise InputError(path, f"video {video_id}: no 'objects' object")
    found = {}
    for obj_id, obj in objects.items():
        frames = obj.get("frames") if isinstance(obj, dict) else None
        if not str(obj_id).isdigit() or not isinstance(frames, list):
            raise InputError(path, f"video {video_id}, object {obj_id!r}: no 'frames' list")
        found[int(obj_id)] = set(map(str, frames))
    return found

"""MeViS train split as distributed, read into referrals.

Layout under the benchmark folder (found in DATA as rvos_core.data.mevis finds it)::

    train/JPEGImages/<video>/<frame>.jpg
    train/meta_expressions.json   videos -> {frames, expressions -> {exp, obj_id: [..], anno_id: [..]}}
    train/mask_dict.json          anno_id -> one COCO RLE per frame of its video (null = absent)

An expression may name several objects; its target is the union of its anno_ids' masks in each
frame. RLE i of an anno_id belongs to the video's i-th frame in sorted order.

Upstream: github:henghuiding/MeViS @ 7c0620b, ReferFormer_dataset.py (MeViSDataset), the
ReferFormer-style loader the MeViS authors train with; its sampling and transforms are
ReferFormer's (github:RobertLuo1/iccv2023_RVOS_Challenge @ c538b0dca85da0719b32ea45253f8b3077defea6,
ReferFormer/datasets/ytvos.py, transforms_video.py). Known differences: an anno_id missing from
mask_dict.json, an RLE list whose length is not the video's frame count, an RLE of another size
than its frame, a non-null RLE that is empty and an expression whose objects are null in every
frame are InputErrors (upstream: a KeyError, a wrong frame, a broadcast error, and silent
resampling); ``strict=False`` leaves the last kind out and accepts empty RLEs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rvos_core.data import Expression, Video, open_dataset
from rvos_core.data.base import load_json
from rvos_core.errors import InputError
from rvos_train.data.referrals import Referral, RleTarget, clean_caption, keep_visible


def referrals(data: Path, strict: bool) -> list[Referral]:
    """One referral per expression of the train split found in ``data``, in video, then meta order.

    An expression whose objects are null in every frame is an InputError when ``strict``, left
    out otherwise.
    """
    dataset = open_dataset("mevis", data, "train")
    mask_path = dataset.extra["mask_dict"]
    mask_dict = load_json(mask_path)
    if not isinstance(mask_dict, dict):
        raise InputError(mask_path, "not an object of anno_id -> RLE list")
    found = [
        _referral(video, expression, mask_dict, mask_path, dataset.meta_path)
        for video in dataset
        for expression in video.expressions
    ]
    return keep_visible(found, strict, mask_path)


def _referral(
    video: Video, expression: Expression, mask_dict: dict[str, Any], mask_path: Path, meta: Path
) -> Referral:
    where = f"video {video.id}, expression {expression.id}"
    if not expression.anno_ids:
        raise InputError(meta, f"{where}: no anno_id")
    frames = tuple(sorted(video.frames))
    rles = tuple(
        _rle_list(mask_dict, anno, len(frames), mask_path, where, meta)
        for anno in expression.anno_ids
    )
    present = frozenset(t for t in range(len(frames)) if any(r[t] is not None for r in rles))
    return Referral(
        source=f"mevis/{video.id}/{expression.id}",
        caption=clean_caption(expression.text),
        frames=tuple(video.frame_path(f) for f in frames),
        present=present,
        target=RleTarget(expression.anno_ids, rles, mask_path),
    )


def _rle_list(
    mask_dict: dict[str, Any], anno: str, length: int, mask_path: Path, where: str, meta: Path
) -> list[Any]:
    """The per-frame RLEs of ``anno``, one per frame of the video."""
    if anno not in mask_dict:
        raise InputError(meta, f"{where}: anno_id {anno} is not in {mask_path.name}")
    rles = mask_dict[anno]
    if not isinstance(rles, list) or len(rles) != length:
        found = len(rles) if isinstance(rles, list) else "no list"
        raise InputError(
            mask_path, f"anno_id {anno}: {found} RLEs for the {length} frames ({where})"
        )
    return rles

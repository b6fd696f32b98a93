"""Import upstream artefacts into run folders.

* ``split-pth``: an upstream per-model ``.pth`` dict ``{video: {exp_id: {'mask_logits': [T, H, W],
  'class_info': [T floats]}}}``, whole or split in any number of chunk files (upstream's
  ``spilt_pth.py`` writes 5), read without torch and streamed (``rvos_core.torchfile``: tensors are
  memory-mapped views, nothing in the file is executed). The user declares what
  ``mask_logits`` holds: logits (SOC, MUTR, ReferFormer) or probabilities (UNINEXT).
* ``import-png``: an upstream PNG tree ``<video>/<exp_id>/<frame>.png`` (e.g. an
  ``Annotations_AOT_class_index`` folder), optionally with its ``key_frame.json``.

Both check everything against the dataset meta and write nothing that looks complete unless all of
it was right.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rvos_core.data import Dataset, Video
from rvos_core.data.base import load_json
from rvos_core.errors import InputError
from rvos_core.masks import quantize_probs, read_mask_png, sigmoid_f32
from rvos_core.progress import progress
from rvos_core.runfolder import RunWriter, check_key_frames, check_output
from rvos_core.torchfile import BFloat16, as_float32, read_torch_file

Domain = Literal["logit", "probability"]


def load_pth(path: Path) -> dict[str, Any]:
    """Open an upstream .pth dict lazily (tensors memory-mapped); refuse anything else.

    Read by ``rvos_core.torchfile`` (no torch): tensors come as read-only NumPy views of the
    file, nothing in it is executed, and a damaged or hostile file is one line naming it.
    """
    data = read_torch_file(path)
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise InputError(path, "not an upstream per-model dict {video: {exp_id: {...}}}")
    return data


def _is_array(value: Any) -> bool:
    """A tensor of the file (rvos_core.torchfile gives NumPy arrays, bfloat16 wrapped)."""
    return isinstance(value, np.ndarray | BFloat16)


def index_chunks(paths: Sequence[Path], dataset: Dataset) -> dict[str, tuple[Path, dict[str, Any]]]:
    """video -> (file, its entry) over all chunk files; every split video exactly once, no others."""
    where: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path in paths:
        for video_id, entry in load_pth(path).items():
            if video_id in where:
                raise InputError(path, f"video {video_id!r} is also in {where[video_id][0]}")
            where[video_id] = (path, entry)
    missing = sorted(set(dataset.videos) - set(where))
    extra = sorted(set(where) - set(dataset.videos))
    if missing:
        raise InputError(
            paths[0], f"{len(missing)} videos of the split are in no file: {_few(missing)}"
        )
    if extra:
        raise InputError(
            paths[0], f"{len(extra)} videos are not in the split {dataset.split}: {_few(extra)}"
        )
    return where


def _few(items: list[str]) -> str:
    return ", ".join(items[:5]) + (" ..." if len(items) > 5 else "")


def _expression_arrays(
    path: Path, video: Video, exp_id: str, entry: Any, domain: Domain
) -> tuple[np.ndarray, list[float]]:
    """(probabilities float32 [T, H, W], scores [T]) of one expression, checked."""
    where = f"video {video.id}, expression {exp_id}"
    if not isinstance(entry, Mapping) or "mask_logits" not in entry or "class_info" not in entry:
        raise InputError(path, f"{where}: expected keys 'mask_logits' and 'class_info'")
    values, scores = entry["mask_logits"], entry["class_info"]
    frames = len(video.frames)
    if not _is_array(values) or values.ndim != 3 or values.shape[0] != frames:
        raise InputError(path, f"{where}: 'mask_logits' must be a [T={frames}, H, W] tensor")
    if not isinstance(scores, list | tuple) or len(scores) != frames:
        raise InputError(path, f"{where}: 'class_info' must list {frames} scores")
    if not all(isinstance(s, int | float) and np.isfinite(s) for s in scores):
        raise InputError(path, f"{where}: 'class_info' holds a non-finite or non-numeric score")
    array = as_float32(values)
    if not np.all(np.isfinite(array)):
        raise InputError(path, f"{where}: 'mask_logits' holds NaN or infinite values")
    if domain == "probability":
        if array.min() < 0.0 or array.max() > 1.0:
            raise InputError(path, f"{where}: probabilities outside [0, 1] (is it logits?)")
        return array, [float(s) for s in scores]
    return sigmoid_f32(array), [float(s) for s in scores]


def check_structure(where: Mapping[str, tuple[Path, dict[str, Any]]], dataset: Dataset) -> None:
    """Check every video's expressions and tensor shapes before anything is written (cheap: mmap)."""
    for video in dataset:
        path, entry = where[video.id]
        if set(entry) != set(video.exp_ids):
            raise InputError(
                path,
                f"video {video.id}: expressions {sorted(entry)} differ from the meta's {list(video.exp_ids)}",
            )
        shapes = set()
        for exp_id in video.exp_ids:
            item = entry[exp_id]
            values = item.get("mask_logits") if isinstance(item, Mapping) else None
            if not _is_array(values) or values.ndim != 3:
                raise InputError(
                    path, f"video {video.id}, expression {exp_id}: no [T, H, W] 'mask_logits'"
                )
            shapes.add(tuple(values.shape))
        if len(shapes) != 1 or next(iter(shapes))[0] != len(video.frames):
            raise InputError(
                path,
                f"video {video.id}: mask shapes {sorted(shapes)}, need one [T={len(video.frames)}, H, W]",
            )


def import_pth(
    paths: Sequence[Path], domain: Domain, dataset: Dataset, out: Path, save_probs: bool = True
) -> bool:
    """Write run folder ``out`` from upstream .pth file(s); True when the run is complete."""
    where = index_chunks(paths, dataset)
    check_structure(where, dataset)
    meta = {
        "producer": "rvos_fusion.split_pth",
        "inputs": [str(p.resolve()) for p in paths],
        "config": {"domain": domain},
        "value_domain": domain,
        "has_scores": True,
        "has_probs": save_probs,
    }
    writer = RunWriter(out, dataset, meta)
    for sink in writer.claims(progress(writer.todo(dataset.videos), desc=f"import {out.name}")):
        video = sink.video
        path, entry = where[video.id]
        with sink:
            for exp_id in video.exp_ids:
                probs, scores = _expression_arrays(path, video, exp_id, entry[exp_id], domain)
                sink.write_masks(exp_id, probs > 0.5)
                sink.write_scores(exp_id, scores)
                if save_probs:
                    sink.write_probs(exp_id, quantize_probs(probs))
    return writer.finalize()


def import_png(folder: Path, dataset: Dataset, out: Path, key_frames: Path | None = None) -> bool:
    """Write run folder ``out`` from an upstream PNG tree (every video, expression, meta frame)."""
    if not folder.is_dir():
        raise InputError(folder, "PNG folder is missing")
    check_output(out, [folder])
    table = None
    if key_frames is not None:
        table = check_key_frames(load_json(key_frames), dataset, key_frames)
    meta = {
        "producer": "rvos_fusion.import_png",
        "inputs": [str(folder.resolve())] + ([str(key_frames.resolve())] if key_frames else []),
        "config": {},
        "value_domain": "binary",
        "has_scores": False,
        "has_probs": False,
    }
    writer = RunWriter(out, dataset, meta)
    for sink in writer.claims(progress(writer.todo(dataset.videos), desc=f"import {out.name}")):
        video = sink.video
        with sink:
            shape = video.frame_size_if_present()
            for exp_id in video.exp_ids:
                for t, frame in enumerate(video.frames):
                    mask = read_mask_png(folder / video.id / exp_id / f"{frame}.png", shape)
                    shape = mask.shape
                    sink.write_mask(exp_id, t, mask)
    return writer.finalize(key_frames=table)

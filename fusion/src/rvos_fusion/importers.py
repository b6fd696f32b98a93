"""Import upstream artefacts into run folders.

* ``split-pth``: an upstream per-model ``.pth`` dict ``{video: {exp_id: {'mask_logits': [T, H, W],
  'class_info': [T floats]}}}``, whole or split in any number of chunk files (upstream's
  ``spilt_pth.py`` writes 5), read without torch and streamed (``rvos_core.torchfile``: tensors are
  memory-mapped views, nothing in the file is executed). The user declares what
  ``mask_logits`` holds: logits (SOC, MUTR, ReferFormer) or probabilities (UNINEXT). Each frame
  is read once, checked (finite; in [0, 1] for probabilities) and quantised exactly by
  ``rvos_core.masks.quantize_frame`` (its masks are q >= 128); an expression's file pages are
  released once it is written, so memory holds one expression's tensor at most (bench/README.md,
  "import").
* ``import-png``: an upstream PNG tree ``<video>/<exp_id>/<frame>.png`` (e.g. an
  ``Annotations_AOT_class_index`` folder), optionally with its ``key_frame.json``.

Both check everything against the dataset meta and write nothing that looks complete unless all of
it was right.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rvos_core.data import Dataset, Video
from rvos_core.data.base import load_json
from rvos_core.errors import InputError
from rvos_core.masks import (
    OutOfDomain,
    QuantizationSteps,
    mask_png_of_rows,
    quantize_frame,
    read_mask_png,
)
from rvos_core.runfolder import (
    RunRecord,
    VideoWriter,
    check_key_frames,
    file_record,
    folder_input,
)
from rvos_core.runner import Stage, Target, run_stage
from rvos_core.torchfile import BFloat16, as_float32, read_torch_file, release_pages

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


def _checked_entry(
    path: Path, where: str, video: Video, entry: Any
) -> tuple[np.ndarray | BFloat16, list[float]]:
    """(the 'mask_logits' tensor [T, H, W], the scores [T]) of one expression (``where``),
    shapes checked."""
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
    return values, [float(s) for s in scores]


def _frame(values: np.ndarray | BFloat16, t: int) -> np.ndarray:
    """float32 [H, W] frame ``t`` of a [T, H, W] tensor (a view of the file when float32)."""
    return as_float32(BFloat16(values.bits[t]) if isinstance(values, BFloat16) else values[t])


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


@dataclass
class PthImport(Stage):
    """``split-pth`` as a stage of rvos_core.runner: upstream .pth file(s) -> a run."""

    paths: Sequence[Path]
    domain: Domain
    save_probs: bool = True
    name: str = "import"
    chunks: dict[str, tuple[Path, dict[str, Any]]] = field(default_factory=dict)

    @cached_property
    def record(self) -> RunRecord:
        return RunRecord(
            producer="rvos_fusion.split_pth",
            value_domain=self.domain,
            has_scores=True,
            has_probs=self.save_probs,
            inputs=tuple(file_record(p, "file", hashed=False) for p in self.paths),
            config={"domain": self.domain},
        )

    def check(self, dataset: Dataset, videos: Sequence[Video]) -> None:
        self.chunks = index_chunks(self.paths, dataset)
        check_structure(self.chunks, dataset)

    def write_video(self, out: VideoWriter) -> None:
        """Every expression of the video, frame by frame; each expression's pages of the file are
        released once it is written (memory: one expression's tensor at most)."""
        path, entry = self.chunks[out.video.id]
        for exp_id in out.video.exp_ids:
            try:
                self._write_expression(out, path, exp_id, entry[exp_id])
            finally:
                release_pages(entry[exp_id]["mask_logits"])

    def _write_expression(self, out: VideoWriter, path: Path, exp_id: str, entry: Any) -> None:
        """Masks (q >= 128), scores and stored probabilities uint8 [T, H, W] of one expression;
        each frame is checked (finite, and in [0, 1] for probabilities) as it is quantised."""
        where = f"video {out.video.id}, expression {exp_id}"
        values, scores = _checked_entry(path, where, out.video, entry)
        steps = QuantizationSteps.of(self.domain == "logit")
        frames, height, width = values.shape
        probs = np.empty((frames if self.save_probs else 1, height, width), np.uint8)
        rows = np.empty((height, width + 1), np.uint8)
        for t in range(frames):
            try:
                q = probs[t if self.save_probs else 0]
                quantize_frame(_frame(values, t), steps, out=q, rows=rows)
            except OutOfDomain as exc:
                hint = "" if self.domain == "logit" else " (is it logits?)"
                raise InputError(path, f"{where}: 'mask_logits' holds {exc}{hint}") from None
            out.write_png(exp_id, t, mask_png_of_rows(rows), (height, width))
        out.write_scores(exp_id, scores)
        if self.save_probs:
            out.write_probs(exp_id, probs)


def import_pth(
    paths: Sequence[Path], domain: Domain, dataset: Dataset, out: Path, save_probs: bool = True
) -> bool:
    """Write run folder ``out`` from upstream .pth file(s); True when the run is complete."""
    stage = PthImport(paths, domain, save_probs, name=f"import {out.name}")
    return run_stage(stage, Target(out, dataset))


@dataclass
class PngImport(Stage):
    """``import-png`` as a stage of rvos_core.runner: an upstream PNG tree -> a run."""

    folder: Path
    key_frames_file: Path | None = None
    name: str = "import"
    table: Mapping[str, Any] | None = None

    @property
    def inputs(self) -> Sequence[Path]:
        return (self.folder,)

    @cached_property
    def record(self) -> RunRecord:
        key_frames = self.key_frames_file
        return RunRecord(
            producer="rvos_fusion.import_png",
            value_domain="binary",
            has_scores=False,
            has_probs=False,
            inputs=(folder_input(self.folder),)
            + (() if key_frames is None else (file_record(key_frames, "file"),)),
        )

    def check(self, dataset: Dataset, videos: Sequence[Video]) -> None:
        if not self.folder.is_dir():
            raise InputError(self.folder, "PNG folder is missing")
        if self.key_frames_file is not None:
            table = load_json(self.key_frames_file)
            self.table = check_key_frames(table, dataset, self.key_frames_file)

    def write_video(self, out: VideoWriter) -> None:
        video = out.video
        shape = video.frame_size_if_present()
        for exp_id in video.exp_ids:
            for t, frame in enumerate(video.frames):
                mask = read_mask_png(self.folder / video.id / exp_id / f"{frame}.png", shape)
                shape = mask.shape
                out.write_mask(exp_id, t, mask)

    def key_frames(self) -> Mapping[str, Any] | None:
        return self.table


def import_png(folder: Path, dataset: Dataset, out: Path, key_frames: Path | None = None) -> bool:
    """Write run folder ``out`` from an upstream PNG tree (every video, expression, meta frame)."""
    stage = PngImport(folder, key_frames, name=f"import {out.name}")
    return run_stage(stage, Target(out, dataset))

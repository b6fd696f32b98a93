"""Run folders: the one format every stage reads and writes (see DESIGN.md).

::

    <run>/Annotations/<video>/<exp_id>/<frame>.png   mode 'L', 0/255, original frame size
    <run>/scores/<video>.json                        {exp_id: [one float per listed frame]}
    <run>/key_frame.json                             {video: {exp_id: {"index_info": {"class_index": k}}}}
    <run>/probs/<video>.h5                           optional: per exp_id uint8 [T, H, W] (masks.quantize_probs)
    <run>/run.json                                   provenance, written last: its presence means complete

Work is done per video. A video is staged in ``.staging/`` and moved into place, then marked in
``.done/``; a killed run resumes with the unmarked videos and ends with the same bytes. key_frame.json
is derived from the scores (first maximum per expression) when the run is finalised.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rvos_core import __version__
from rvos_core.atomic import dumps_json, replace_dir, write_bytes, write_json
from rvos_core.data.base import Dataset, Video
from rvos_core.errors import ConfigError, InputError
from rvos_core.masks import encode_mask_png, read_mask_png
from rvos_core.names import check_name

FORMAT = "rvos-run/1"
RUN_JSON = "run.json"
PENDING = ".pending.json"
DOMAINS = ("binary", "logit", "probability")


@dataclass
class VideoResult:
    """What a stage produces for one video.

    Attributes:
        masks: exp_id -> bool [T, H, W], every expression of the video, frames in meta order.
        scores: exp_id -> T per-frame scores (the upstream "class_info"), or None.
        probs: exp_id -> uint8 [T, H, W] from ``masks.quantize_probs``, or None.
    """

    masks: dict[str, np.ndarray]
    scores: dict[str, list[float]] | None = None
    probs: dict[str, np.ndarray] | None = None


def dataset_record(dataset: Dataset) -> dict[str, Any]:
    """What run.json says about the dataset a run covers."""
    digest = hashlib.sha256(dataset.meta_path.read_bytes()).hexdigest() if dataset.meta_path.is_file() else None
    return {"name": dataset.name, "split": dataset.split, "videos": len(dataset), "meta_sha256": digest}


def key_frame_index(scores: list[float]) -> int:
    """Index of the first maximum (NumPy argmax semantics: ties go to the earliest frame)."""
    return int(np.argmax(np.asarray(scores, dtype=np.float64)))


class RunWriter:
    """Writes one run folder for one dataset split, video by video, resumably.

    Args:
        root: the run folder.
        dataset: the split; its videos define what "complete" means.
        meta: provenance for run.json: producer, config, inputs, checkpoint, value_domain
            ("binary", "logit" or "probability": what the stored probabilities were made from),
            has_scores, has_probs. A resumed run must be given the same meta.
    """

    def __init__(self, root: Path, dataset: Dataset, meta: Mapping[str, Any]) -> None:
        self.root = Path(root)
        self.dataset = dataset
        self.meta = {"format": FORMAT, "dataset": dataset_record(dataset), **meta}
        if self.meta.get("value_domain") not in DOMAINS:
            raise ValueError(f"value_domain must be one of {DOMAINS}")
        self._start()

    @property
    def complete(self) -> bool:
        return (self.root / RUN_JSON).is_file()

    def _start(self) -> None:
        if self.complete:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        pending = self.root / PENDING
        wanted = dumps_json(self.meta)
        if pending.is_file() and pending.read_text() != wanted:
            raise ConfigError(
                f"{self.root} was started with other settings (see {pending}); "
                "use the same settings to resume, or remove the folder"
            )
        if not pending.is_file():
            write_bytes(pending, wanted.encode())

    def is_done(self, video_id: str) -> bool:
        return self.complete or (self.root / ".done" / video_id).is_file()

    def todo(self, video_ids: Iterable[str]) -> list[str]:
        """The videos of ``video_ids`` not written yet, in sorted order."""
        return [v for v in sorted(video_ids) if not self.is_done(v)]

    def write_video(self, video: Video, result: VideoResult) -> None:
        """Check ``result`` against the video's meta and move it into place atomically."""
        check_name(video.id, self.dataset.meta_path, "video id")
        _check_result(video, result, self.meta)
        staging = self.root / ".staging" / f"{video.id}.{os.getpid()}"
        if staging.exists():
            shutil.rmtree(staging)
        _stage_masks(staging / "Annotations", video, result.masks)
        if self.meta.get("has_probs"):
            _write_probs(staging / "probs.h5", video, result.probs or {})
        replace_dir(staging / "Annotations", self.root / "Annotations" / video.id)
        if self.meta.get("has_probs"):
            (self.root / "probs").mkdir(exist_ok=True)
            os.replace(staging / "probs.h5", self.root / "probs" / f"{video.id}.h5")
        if self.meta.get("has_scores"):
            ordered = {e: [float(s) for s in result.scores[e]] for e in video.exp_ids}
            write_json(self.root / "scores" / f"{video.id}.json", ordered)
        shutil.rmtree(staging)
        write_bytes(self.root / ".done" / video.id, b"")

    def finalize(self) -> bool:
        """Write key_frame.json and run.json if every video is done; True when the run is complete."""
        if self.complete:
            return True
        if self.todo(self.dataset.videos):
            return False
        counts = {
            "videos": len(self.dataset),
            "expressions": sum(len(v.expressions) for v in self.dataset),
            "masks": sum(len(v.expressions) * len(v.frames) for v in self.dataset),
        }
        if self.meta.get("has_scores"):
            write_json(self.root / "key_frame.json", self._key_frames())
        write_json(self.root / RUN_JSON, {**self.meta, "counts": counts, "code_version": __version__})
        for leftover in (".done", ".staging"):
            shutil.rmtree(self.root / leftover, ignore_errors=True)
        (self.root / PENDING).unlink(missing_ok=True)
        return True

    def _key_frames(self) -> dict[str, dict[str, Any]]:
        table: dict[str, dict[str, Any]] = {}
        for video in self.dataset:
            scores = read_scores_file(self.root / "scores" / f"{video.id}.json", video)
            table[video.id] = {
                e: {"index_info": {"class_index": key_frame_index(scores[e])}} for e in video.exp_ids
            }
        return table


def _check_result(video: Video, result: VideoResult, meta: Mapping[str, Any]) -> None:
    if set(result.masks) != set(video.exp_ids):
        raise ValueError(f"video {video.id}: masks for {sorted(result.masks)}, expected {video.exp_ids}")
    shape = None
    for exp_id in video.exp_ids:
        mask = result.masks[exp_id]
        if mask.ndim != 3 or mask.shape[0] != len(video.frames):
            raise ValueError(f"video {video.id}/{exp_id}: mask shape {mask.shape}, need [T={len(video.frames)}, H, W]")
        if shape is not None and mask.shape != shape:
            raise ValueError(f"video {video.id}/{exp_id}: mask shape {mask.shape} differs from {shape}")
        shape = mask.shape
        if meta.get("has_scores"):
            _check_scores(video, exp_id, result.scores)
        if meta.get("has_probs"):
            probs = (result.probs or {}).get(exp_id)
            if probs is None or probs.shape != shape or probs.dtype != np.uint8:
                raise ValueError(f"video {video.id}/{exp_id}: probs must be uint8 {shape}")


def _check_scores(video: Video, exp_id: str, scores: dict[str, list[float]] | None) -> None:
    values = None if scores is None else scores.get(exp_id)
    if values is None or len(values) != len(video.frames):
        raise ValueError(f"video {video.id}/{exp_id}: need {len(video.frames)} scores")
    if not np.all(np.isfinite(np.asarray(values, dtype=np.float64))):
        raise ValueError(f"video {video.id}/{exp_id}: scores must be finite")


def _stage_masks(folder: Path, video: Video, masks: Mapping[str, np.ndarray]) -> None:
    for exp_id in video.exp_ids:
        exp_dir = folder / exp_id
        exp_dir.mkdir(parents=True)
        for frame, mask in zip(video.frames, masks[exp_id], strict=True):
            (exp_dir / f"{frame}.png").write_bytes(encode_mask_png(mask))


def _write_probs(path: Path, video: Video, probs: Mapping[str, np.ndarray]) -> None:
    """One uint8 dataset per expression, chunked per frame; no timestamps (deterministic bytes)."""
    with h5py.File(path, "w", libver="v110", track_order=True) as handle:
        for exp_id in video.exp_ids:
            data = probs[exp_id]
            handle.create_dataset(
                exp_id, data=data, chunks=(1, *data.shape[1:]), compression="gzip",
                compression_opts=1, track_times=False,
            )


def read_scores_file(path: Path, video: Video) -> dict[str, list[float]]:
    """Per-frame scores of every expression of ``video``; checked for ids, length and finiteness."""
    try:
        scores = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "scores file is missing") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON: {exc}") from None
    for exp_id in video.exp_ids:
        values = scores.get(exp_id) if isinstance(scores, dict) else None
        if not isinstance(values, list) or len(values) != len(video.frames):
            raise InputError(path, f"expression {exp_id}: expected {len(video.frames)} scores")
        if not all(isinstance(v, int | float) and np.isfinite(v) for v in values):
            raise InputError(path, f"expression {exp_id}: scores must be finite numbers")
    return scores


class Run:
    """A complete run folder, for reading. Opening an incomplete folder is an InputError."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        meta_file = self.root / RUN_JSON
        if not meta_file.is_file():
            state = "is not a run folder" if not self.root.is_dir() else "is incomplete (no run.json)"
            raise InputError(self.root, f"run folder {state}; run or resume the stage that makes it")
        try:
            self.meta: dict[str, Any] = json.loads(meta_file.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(meta_file, f"not valid JSON: {exc}") from None
        if self.meta.get("format") != FORMAT:
            raise InputError(meta_file, f"not a {FORMAT} run (format {self.meta.get('format')!r})")

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def has_scores(self) -> bool:
        return bool(self.meta.get("has_scores"))

    @property
    def has_probs(self) -> bool:
        return bool(self.meta.get("has_probs"))

    @property
    def value_domain(self) -> str:
        return str(self.meta.get("value_domain"))

    def check_dataset(self, dataset: Dataset) -> None:
        """Refuse a run made for another benchmark or split than ``dataset``."""
        record = self.meta.get("dataset", {})
        if (record.get("name"), record.get("split")) != (dataset.name, dataset.split):
            raise InputError(
                self.root / RUN_JSON,
                f"run is for {record.get('name')}/{record.get('split')}, not {dataset.name}/{dataset.split}",
            )

    def mask_path(self, video_id: str, exp_id: str, frame: str) -> Path:
        return self.root / "Annotations" / video_id / exp_id / f"{frame}.png"

    def masks(self, video: Video, exp_id: str, shape: tuple[int, int] | None = None) -> np.ndarray:
        """bool [T, H, W] of one expression; every frame must exist and share one size."""
        frames = []
        for frame in video.frames:
            mask = read_mask_png(self.mask_path(video.id, exp_id, frame), shape)
            shape = mask.shape
            frames.append(mask)
        return np.stack(frames)

    def scores(self, video: Video) -> dict[str, list[float]]:
        if not self.has_scores:
            raise InputError(self.root / RUN_JSON, "run has no scores")
        return read_scores_file(self.root / "scores" / f"{video.id}.json", video)

    def probs(self, video: Video, exp_id: str, shape: tuple[int, int] | None = None) -> np.ndarray:
        """uint8 [T, H, W] stored probabilities of one expression (see masks.quantize_probs)."""
        path = self.root / "probs" / f"{video.id}.h5"
        if not self.has_probs:
            raise InputError(self.root / RUN_JSON, "run has no stored probabilities (probs/)")
        try:
            with h5py.File(path, "r") as handle:
                data = handle[exp_id][()] if exp_id in handle else None
        except FileNotFoundError:
            raise InputError(path, "probabilities file is missing") from None
        except OSError as exc:
            raise InputError(path, f"unreadable HDF5 file: {exc}") from None
        expected = (len(video.frames), *(shape or ()))
        if data is None or data.dtype != np.uint8 or data.shape[: len(expected)] != expected:
            raise InputError(path, f"expression {exp_id}: expected uint8 [{len(video.frames)}, H, W]")
        return data

    def key_frames(self) -> dict[str, dict[str, Any]]:
        path = self.root / "key_frame.json"
        if not path.is_file():
            raise InputError(path, "run has no key_frame.json")
        return json.loads(path.read_text())

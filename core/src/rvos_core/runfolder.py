"""Run folders: the one format every stage reads and writes (docs/architecture.md).

::

    <run>/Annotations/<video>/<exp_id>/<frame>.png   mode 'L', 0/255, original frame size
    <run>/scores/<video>.json                        {exp_id: [one float per listed frame]}
    <run>/key_frame.json                             {video: {exp_id: {"index_info": {"class_index": k}}}}
    <run>/probs/<video>.h5                           optional: per exp_id uint8 [T, H, W] (masks.quantize_probs)
    <run>/run.json                                   provenance, written last: its presence means complete

Work is done per video. A video is staged in ``.staging/`` and moved into place, then marked in
``.done/``; a killed run resumes with the unmarked videos and ends with the same bytes. key_frame.json
is derived from the scores (first maximum per expression) when the run is finalised.

Any number of processes may write one run folder at once (shards, a requeued job, a command started
twice). Each holds a shared lock on ``.lock`` and the video's lock in ``.locks/`` while it writes a
video, so a video is written by one process at a time and never again once marked; finalising takes
``.lock`` exclusively, checks every video on disk, writes run.json and removes the markers. The
locks are ``flock`` locks: a killed process holds none.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
from zlib_ng import zlib_ng

from rvos_core import __version__
from rvos_core.atomic import (
    dumps_json,
    lock,
    replace_dir,
    unlock,
    write_bytes,
    write_json,
    write_new,
)
from rvos_core.data.base import Dataset, Video, load_json
from rvos_core.errors import ConfigError, InputError
from rvos_core.masks import encode_mask_png, read_mask_png
from rvos_core.names import check_name

if TYPE_CHECKING:
    import h5py

FORMAT = "rvos-run/1"
RUN_JSON = "run.json"
PENDING = ".pending.json"
LOCK = ".lock"
DOMAINS = ("binary", "logit", "probability")
# What a run folder holds only while it is written: staged videos, video locks, done markers.
_WORK_FOLDERS = (".staging", ".locks", ".done")
# The run.json fields that describe the outcome, not the request.
_OUTCOME = ("counts", "code_version")


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


@dataclass(frozen=True)
class RunRecord:
    """How a run is made: what every stage records in run.json (and ``.pending.json``), beside
    the "format", "dataset", "counts" and "code_version" the writer adds. A resumed run, or a
    complete one asked again, must be given an equal record.

    Attributes:
        producer: the stage (e.g. "rvos_nn.infer", "rvos_vos.propagate aot").
        value_domain: "binary", "logit" or "probability": what the stored probabilities were
            made from.
        has_scores / has_probs: whether the run stores scores / probabilities.
        inputs: what the run is made from (``run_input``, ``file_input``, ``folder_input``):
            names and digests, no absolute paths, so that a moved WORK folder still matches.
        checkpoint: ``file_record`` of the weights, or None.
        config: the stage's settings.
    """

    producer: str
    value_domain: str
    has_scores: bool
    has_probs: bool
    inputs: tuple[Mapping[str, Any], ...] = ()
    checkpoint: Mapping[str, Any] | None = None
    config: Mapping[str, Any] = field(default_factory=dict)

    def meta(self) -> dict[str, Any]:
        """The record as run.json's keys."""
        return {
            "producer": self.producer,
            "inputs": [dict(item) for item in self.inputs],
            "checkpoint": None if self.checkpoint is None else dict(self.checkpoint),
            "config": dict(self.config),
            "value_domain": self.value_domain,
            "has_scores": self.has_scores,
            "has_probs": self.has_probs,
        }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path: Path, what: str = "checkpoint file", hashed: bool = True) -> dict[str, Any]:
    """{"file", "bytes"(, "sha256")} of a file: its name only, runs move between machines; a
    missing file is an InputError saying "<what> is missing"."""
    try:
        record: dict[str, Any] = {"file": path.name, "bytes": path.stat().st_size}
        if hashed:
            record["sha256"] = _sha256(path)
    except FileNotFoundError:
        raise InputError(path, f"{what} is missing") from None
    return record


def folder_input(path: Path) -> dict[str, Any]:
    """The input record of a folder that is not a run (e.g. an upstream PNG tree): its name."""
    return {"folder": path.name}


def _meta_of(meta: RunRecord | Mapping[str, Any]) -> Mapping[str, Any]:
    return meta.meta() if isinstance(meta, RunRecord) else meta


def dataset_record(dataset: Dataset) -> dict[str, Any]:
    """What run.json says about the dataset a run covers."""
    digest = _sha256(dataset.meta_path) if dataset.meta_path.is_file() else None
    return {
        "name": dataset.name,
        "split": dataset.split,
        "videos": len(dataset),
        "meta_sha256": digest,
    }


def key_frame_index(scores: list[float]) -> int:
    """Index of the first maximum (NumPy argmax semantics: ties go to the earliest frame)."""
    return int(np.argmax(np.asarray(scores, dtype=np.float64)))


def require_videos(dataset: Dataset) -> None:
    """Refuse an empty split: what a stage writes for it would be complete with nothing."""
    if not len(dataset):
        raise InputError(dataset.meta_path, f"split {dataset.name}/{dataset.split} lists no videos")


def request_record(dataset: Dataset, meta: RunRecord | Mapping[str, Any]) -> dict[str, Any]:
    """What run.json records (less the outcome) for a run of ``dataset`` with provenance ``meta``,
    as JSON reads it back. An empty split is refused."""
    require_videos(dataset)
    record = {"format": FORMAT, "dataset": dataset_record(dataset), **_meta_of(meta)}
    if record.get("value_domain") not in DOMAINS:
        raise ValueError(f"value_domain must be one of {DOMAINS}")
    return json.loads(dumps_json(record))


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested JSON value as {"dotted.key": value} (the objects of a list of objects, such as
    the inputs, keyed by their index)."""
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        value = {str(i): item for i, item in enumerate(value)}
    if not isinstance(value, dict) or not value:
        return {prefix: value}
    leaves: dict[str, Any] = {}
    for key, item in value.items():
        leaves.update(_leaves(item, f"{prefix}.{key}" if prefix else str(key)))
    return leaves


def _settings_conflict(recorded: Any, requested: Mapping[str, Any], where: str) -> str:
    """The settings in which ``recorded`` (read from file ``where``) and ``requested`` differ,
    both named ("" when they agree)."""
    old, new = _leaves(recorded), _leaves(dict(requested))
    keys = [k for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
    shown = [
        f"{k} = {json.dumps(old.get(k))} in {where}, {json.dumps(new.get(k))} in this command"
        for k in keys[:3]
    ]
    more = f" (and {len(keys) - 3} more)" if len(keys) > 3 else ""
    return "; ".join(shown) + more


def _tidy(root: Path) -> None:
    """Remove what a complete run folder no longer needs (staging, locks, markers, settings), as
    far as this user may: another user's complete run is read, not changed."""
    for name in _WORK_FOLDERS:
        shutil.rmtree(root / name, ignore_errors=True)
    for name in (PENDING, LOCK):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            (root / name).unlink()


def _finished(root: Path, requested: Mapping[str, Any]) -> bool:
    """True when ``root`` is complete (and then tidy); a ConfigError when its run.json records
    other settings than ``requested``."""
    path = root / RUN_JSON
    if not path.is_file():
        return False
    recorded = load_json(path)
    if not isinstance(recorded, dict):
        raise InputError(path, "not a JSON object")
    conflict = _settings_conflict(
        {k: v for k, v in recorded.items() if k not in _OUTCOME}, requested, RUN_JSON
    )
    if conflict:
        raise ConfigError(
            f"{root}: the run is complete with other settings: {conflict}; "
            "write to another folder, or remove this one to make it again"
        )
    _tidy(root)
    return True


def check_finished(root: Path, dataset: Dataset, meta: RunRecord | Mapping[str, Any]) -> bool:
    """True when ``root`` is a complete run of ``dataset`` made with provenance ``meta`` (nothing
    to do); False when it is not complete; a ConfigError naming both settings when it is complete
    with others. An empty split is an InputError."""
    return _finished(Path(root), request_record(dataset, meta))


def videos_to_do(root: Path, video_ids: Iterable[str]) -> list[str]:
    """The videos of ``video_ids`` that run folder ``root`` has not marked done, sorted."""
    if (Path(root) / RUN_JSON).is_file():
        return []
    return [v for v in sorted(video_ids) if not (Path(root) / ".done" / v).is_file()]


def check_output(out: Path, inputs: Iterable[Path]) -> None:
    """Refuse an output folder that is one of the input runs or inside one (resolved paths)."""
    target = Path(out).resolve()
    for source in inputs:
        folder = Path(source).resolve()
        if target == folder or folder in target.parents:
            raise ConfigError(
                f"{out}: the output would be written into input run {source}; "
                "choose another output folder"
            )


def _check_frames(folder: Path, video: Video) -> None:
    """Every listed frame of ``video`` has its PNG in mask folder ``folder``."""
    try:
        present = set(os.listdir(folder))
    except FileNotFoundError:
        raise InputError(folder, "mask folder is missing") from None
    for frame in video.frames:
        if f"{frame}.png" not in present:
            raise InputError(folder / f"{frame}.png", "mask PNG is missing")


class RunWriter:
    """Writes one run folder for one dataset split, video by video, resumably.

    Args:
        root: the run folder.
        dataset: the split; its videos define what "complete" means. An empty split is refused.
        meta: provenance for run.json: a RunRecord (every stage), or its keys (tests and
            benchmarks may give fewer). A resumed run, or a complete one asked again, must be
            given the same meta (and dataset): other settings are a ConfigError naming both.
    """

    def __init__(self, root: Path, dataset: Dataset, meta: RunRecord | Mapping[str, Any]) -> None:
        self.root = Path(root)
        self.dataset = dataset
        self.meta = request_record(dataset, meta)
        self._start()

    @property
    def complete(self) -> bool:
        return (self.root / RUN_JSON).is_file()

    def _start(self) -> None:
        """Record the settings in .pending.json, or check them against those recorded."""
        if _finished(self.root, self.meta):
            return
        self.root.mkdir(parents=True, exist_ok=True)
        held = self._hold(shared=True)
        if held is None:  # completed meanwhile by another process
            _finished(self.root, self.meta)
            return
        try:
            pending = self.root / PENDING
            write_new(pending, dumps_json(self.meta).encode())
            conflict = _settings_conflict(load_json(pending), self.meta, PENDING)
        finally:
            unlock(held)
        if conflict:
            raise ConfigError(
                f"{self.root}: the run was started with other settings: {conflict}; "
                "use the same settings to resume, or remove the folder"
            )

    def _hold(self, shared: bool) -> int | None:
        """Lock the run: shared to write a video, exclusive to finalise it. None (nothing held)
        once the run is complete."""
        while not self.complete:
            held = lock(self.root / LOCK, shared)
            if not self.complete:
                return held
            unlock(held)
        _tidy(self.root)
        return None

    def is_done(self, video_id: str) -> bool:
        return self.complete or (self.root / ".done" / video_id).is_file()

    def todo(self, video_ids: Iterable[str]) -> list[str]:
        """The videos of ``video_ids`` not written yet, in sorted order."""
        return videos_to_do(self.root, video_ids)

    def claim_video(self, video: Video) -> VideoWriter | None:
        """A writer that stages ``video`` frame by frame, holding its lock; None when the video is
        done (by any process). Waits while another process writes it.

        Use the writer as a context manager: it commits on success, discards the video on an
        exception, and releases the locks either way.
        """
        check_name(video.id, self.dataset.meta_path, "video id")
        held = self._hold(shared=True)
        if held is None:
            return None
        locks = [held]
        try:
            (self.root / ".locks").mkdir(exist_ok=True)
            locks.insert(0, lock(self.root / ".locks" / video.id))
            if not self.is_done(video.id):
                return VideoWriter(self, video, tuple(locks))
        except BaseException:
            _release(locks)
            raise
        _release(locks)
        return None

    def write_video(self, video: Video, result: VideoResult) -> bool:
        """Write a whole video at once (see VideoResult); False when it was done already."""
        out = self.claim_video(video)
        if out is None:
            return False
        with out:
            for exp_id in video.exp_ids:
                if exp_id not in result.masks:
                    raise ValueError(f"video {video.id}: no masks for expression {exp_id}")
                out.write_masks(exp_id, result.masks[exp_id])
                if result.scores is not None:
                    out.write_scores(exp_id, result.scores[exp_id])
                if result.probs is not None:
                    out.write_probs(exp_id, result.probs[exp_id])
            extra = set(result.masks) - set(video.exp_ids)
            if extra:
                raise ValueError(f"video {video.id}: masks for unknown expressions {sorted(extra)}")
        return True

    def finalize(self, key_frames: Mapping[str, Any] | None = None) -> bool:
        """Write key_frame.json and run.json if every video is done; True when the run is complete.

        Every video is checked on disk first (every expression's every frame, scores and
        probabilities when the run has them). key_frame.json is derived from the scores; a run
        without scores may be given ``key_frames`` (upstream layout) instead, e.g. when importing
        upstream outputs.
        """
        if _finished(self.root, self.meta):
            return True
        if self.todo(self.dataset.videos):
            return False
        held = self._hold(shared=False)
        if held is None:
            return True
        try:
            if self.todo(self.dataset.videos):
                return False
            self._complete(key_frames)
        finally:
            unlock(held)
        return True

    def _complete(self, key_frames: Mapping[str, Any] | None) -> None:
        """Under the exclusive lock: check every video, write key_frame.json, then run.json, then
        remove what the finished run no longer needs."""
        table = self._verify()
        if table is None and key_frames is not None:
            table = check_key_frames(key_frames, self.dataset, self.root)
        if table is not None:
            write_json(self.root / "key_frame.json", table)
        record = {**self.meta, "counts": self._counts(), "code_version": __version__}
        write_json(self.root / RUN_JSON, record)
        _tidy(self.root)

    def _counts(self) -> dict[str, int]:
        return {
            "videos": len(self.dataset),
            "expressions": sum(len(v.expressions) for v in self.dataset),
            "masks": sum(len(v.expressions) * len(v.frames) for v in self.dataset),
        }

    def _verify(self) -> dict[str, dict[str, Any]] | None:
        """Check every video on disk; return the key frames of the scores (None without scores).

        A video marked done but not all there is unmarked, so that the next run writes it again.
        """
        table = {}
        for video in self.dataset:
            try:
                table[video.id] = self._check_video(video)
            except InputError as exc:
                (self.root / ".done" / video.id).unlink(missing_ok=True)
                raise InputError(
                    exc.path,
                    f"{exc.problem}, but video {video.id} was marked done; it is unmarked: "
                    "run the stage again to write it",
                ) from None
        return table if self.meta.get("has_scores") else None

    def _check_video(self, video: Video) -> dict[str, Any]:
        """Check one committed video; its key frames when the run has scores."""
        for exp_id in video.exp_ids:
            _check_frames(self.root / "Annotations" / video.id / exp_id, video)
        if self.meta.get("has_probs"):
            with ProbsReader(self.root / "probs" / f"{video.id}.h5", video) as reader:
                for exp_id in video.exp_ids:
                    reader.dataset(exp_id)
        if not self.meta.get("has_scores"):
            return {}
        scores = read_scores_file(self.root / "scores" / f"{video.id}.json", video)
        return {
            e: {"index_info": {"class_index": key_frame_index(scores[e])}} for e in video.exp_ids
        }


def _h5py() -> ModuleType:
    """h5py, imported on first use: only runs that store or read probabilities pay for it (a
    tenth of a torch-free command's start-up)."""
    import h5py

    return h5py


def open_probs_file(path: Path) -> h5py.File:
    """A new probs/<video>.h5 (datasets in insertion order)."""
    return _h5py().File(path, "w", libver="v110", track_order=True)


def write_probs_dataset(h5: h5py.File, exp_id: str, probs: np.ndarray) -> None:
    """One expression's stored probabilities uint8 [T, H, W]: one chunk per frame (what a reader
    reads), a gzip dataset whose chunks are deflated by zlib-ng at level 1 and written directly
    (mostly constant maps: ~1 % of their size; 7x faster than HDF5's own zlib filter). Any HDF5
    reader inflates them."""
    dataset = h5.create_dataset(
        exp_id,
        shape=probs.shape,
        dtype=np.uint8,
        chunks=(1, *probs.shape[1:]),
        compression="gzip",
        compression_opts=1,
        track_times=False,
    )
    for t, frame in enumerate(probs):
        dataset.id.write_direct_chunk((t, 0, 0), zlib_ng.compress(np.ascontiguousarray(frame), 1))


def _release(locks: Iterable[int]) -> None:
    for held in locks:
        unlock(held)


class VideoWriter:
    """Stages the outputs of one video in ``<run>/.staging/<video>`` and commits them atomically.

    Made by ``RunWriter.claim_video``, which holds the video's locks for it. Masks can be written
    frame by frame (memory independent of the video length). ``commit`` checks that every
    expression has every frame (and scores / probabilities when the run has them), then moves the
    video into place and marks it done. Used as a context manager, it commits on success and
    discards the staging folder on an exception; either way it releases the locks.
    """

    def __init__(self, run: RunWriter, video: Video, locks: tuple[int, ...]) -> None:
        self.run, self.video = run, video
        self._locks = locks
        self.staging = run.root / ".staging" / video.id
        shutil.rmtree(self.staging, ignore_errors=True)  # what a killed writer staged
        (self.staging / "Annotations").mkdir(parents=True)
        self._frames: dict[str, set[int]] = {e: set() for e in video.exp_ids}
        self._scores: dict[str, list[float]] = {}
        self._probs_done: set[str] = set()
        self._h5: h5py.File | None = None
        self.shape: tuple[int, int] | None = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def _exp(self, exp_id: str) -> set[int]:
        if exp_id not in self._frames:
            raise ValueError(f"video {self.video.id}: unknown expression {exp_id!r}")
        return self._frames[exp_id]

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        if self.shape is None:
            self.shape = (int(shape[0]), int(shape[1]))
        elif tuple(shape) != self.shape:
            raise ValueError(f"video {self.video.id}: frame size {shape} differs from {self.shape}")

    def write_png(self, exp_id: str, t: int, data: bytes, shape: tuple[int, int]) -> None:
        """Store already-encoded mask PNG bytes (see masks.encode_mask_png) as frame ``t``."""
        self._check_shape(shape)
        written = self._exp(exp_id)
        folder = os.path.join(self.staging, "Annotations", exp_id)
        if not written:  # the expression's first frame
            os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{self.video.frames[t]}.png"), "wb") as handle:
            handle.write(data)
        written.add(t)

    def write_mask(self, exp_id: str, t: int, mask: np.ndarray) -> None:
        """Frame ``t`` of expression ``exp_id``: bool [H, W]."""
        self.write_png(exp_id, t, encode_mask_png(mask), mask.shape)

    def write_masks(self, exp_id: str, masks: np.ndarray) -> None:
        """All frames of one expression: bool [T, H, W]."""
        if masks.ndim != 3 or masks.shape[0] != len(self.video.frames):
            raise ValueError(f"video {self.video.id}/{exp_id}: masks {masks.shape}, need [T, H, W]")
        for t, mask in enumerate(masks):
            self.write_mask(exp_id, t, mask)

    def write_scores(self, exp_id: str, values: Iterable[float]) -> None:
        """Per-frame scores [T] of one expression (finite)."""
        self._exp(exp_id)
        scores = [float(v) for v in values]
        if len(scores) != len(self.video.frames) or not np.all(np.isfinite(scores)):
            raise ValueError(
                f"video {self.video.id}/{exp_id}: need {len(self.video.frames)} finite scores"
            )
        self._scores[exp_id] = scores

    def write_probs(self, exp_id: str, probs: np.ndarray) -> None:
        """Stored probabilities of one expression: uint8 [T, H, W] from masks.quantize_probs."""
        self._exp(exp_id)
        if probs.dtype != np.uint8 or probs.ndim != 3 or probs.shape[0] != len(self.video.frames):
            raise ValueError(f"video {self.video.id}/{exp_id}: probs must be uint8 [T, H, W]")
        self._check_shape(probs.shape[1:])
        if self._h5 is None:
            self._h5 = open_probs_file(self.staging / "probs.h5")
        write_probs_dataset(self._h5, exp_id, probs)
        self._probs_done.add(exp_id)

    def _check_complete(self) -> None:
        frames = set(range(len(self.video.frames)))
        for exp_id, written in self._frames.items():
            if written != frames:
                raise ValueError(
                    f"video {self.video.id}/{exp_id}: {len(frames - written)} frames not written"
                )
        meta = self.run.meta
        if meta.get("has_scores") and set(self._scores) != set(self._frames):
            raise ValueError(f"video {self.video.id}: scores missing for some expressions")
        if meta.get("has_probs") and self._probs_done != set(self._frames):
            raise ValueError(f"video {self.video.id}: probabilities missing for some expressions")

    def commit(self) -> None:
        """Check completeness, move the staged video into place, mark it done; release the locks
        (an incomplete video is discarded)."""
        try:
            self._check_complete()
            self._move_into_place()
        finally:
            self.abort()

    def _move_into_place(self) -> None:
        root = self.run.root
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None
            (root / "probs").mkdir(exist_ok=True)
            os.replace(self.staging / "probs.h5", root / "probs" / f"{self.video.id}.h5")
        replace_dir(self.staging / "Annotations", root / "Annotations" / self.video.id)
        if self.run.meta.get("has_scores"):
            ordered = {e: self._scores[e] for e in self.video.exp_ids}
            write_json(root / "scores" / f"{self.video.id}.json", ordered)
        write_bytes(root / ".done" / self.video.id, b"")

    def abort(self) -> None:
        """Discard what is staged for this video (nothing is left once committed) and release
        its locks."""
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None
        shutil.rmtree(self.staging, ignore_errors=True)
        _release(self._locks)
        self._locks = ()


def check_key_frames(table: Mapping[str, Any], dataset: Dataset, source: Path) -> dict[str, Any]:
    """Validate an upstream-layout key-frame table against ``dataset``; return it in dataset order."""
    checked: dict[str, Any] = {}
    for video in dataset:
        entries = table.get(video.id) if isinstance(table, Mapping) else None
        if not isinstance(entries, Mapping):
            raise InputError(source, f"key frames: video {video.id} is missing")
        checked[video.id] = {}
        for exp_id in video.exp_ids:
            try:
                index = entries[exp_id]["index_info"]["class_index"]
            except (KeyError, TypeError):
                raise InputError(source, f"key frames: {video.id}/{exp_id} is missing") from None
            if not isinstance(index, int) or not 0 <= index < len(video.frames):
                raise InputError(
                    source,
                    f"key frames: {video.id}/{exp_id} index {index!r} is outside 0..{len(video.frames) - 1}",
                )
            checked[video.id][exp_id] = {"index_info": {"class_index": index}}
    return checked


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
            state = "does not exist" if not self.root.is_dir() else "is incomplete (no run.json)"
            raise InputError(
                self.root, f"run folder {state}; run or resume the stage that makes it"
            )
        self.meta: dict[str, Any] = load_json(meta_file)
        if not isinstance(self.meta, dict):
            raise InputError(meta_file, "not a JSON object")
        self._annotations = str(self.root / "Annotations")
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

    def input_record(self) -> dict[str, Any]:
        """What a run made from this one records of it (RunRecord.inputs): the folder's name,
        the producer and run.json's sha256, which changes when the run is made again with other
        settings (or for another version of the split)."""
        return {
            "run": self.name,
            "producer": self.meta.get("producer"),
            "sha256": _sha256(self.root / RUN_JSON),
        }

    def check_dataset(self, dataset: Dataset) -> None:
        """Refuse a run made for another benchmark or split than ``dataset``, or from another
        version of its meta file (the split has changed since the run was made)."""
        record = self.meta.get("dataset")
        record = record if isinstance(record, dict) else {}
        if (record.get("name"), record.get("split")) != (dataset.name, dataset.split):
            raise InputError(
                self.root / RUN_JSON,
                f"run is for {record.get('name')}/{record.get('split')}, not {dataset.name}/{dataset.split}",
            )
        digest = dataset_record(dataset)["meta_sha256"]
        if record.get("meta_sha256") != digest:
            raise InputError(
                self.root / RUN_JSON,
                f"run was made from a meta file with sha256 {record.get('meta_sha256')}, "
                f"{dataset.meta_path} now has sha256 {digest}: the split has changed since; "
                "run the stage that made the run again",
            )

    def mask_path(self, video_id: str, exp_id: str, frame: str) -> Path:
        return self.root / "Annotations" / video_id / exp_id / f"{frame}.png"

    def mask_frame(
        self, video: Video, exp_id: str, t: int, shape: tuple[int, int] | None = None
    ) -> np.ndarray:
        """bool [H, W] of frame ``t`` of one expression (must be ``shape`` when given)."""
        # a string path: this is the hot loop of every vote
        return read_mask_png(
            f"{self._annotations}/{video.id}/{exp_id}/{video.frames[t]}.png", shape
        )

    def open_probs(self, video: Video) -> ProbsReader:
        """Per-frame access to the stored probabilities of ``video`` (a context manager)."""
        if not self.has_probs:
            raise InputError(self.root / RUN_JSON, "run has no stored probabilities (probs/)")
        return ProbsReader(self.root / "probs" / f"{video.id}.h5", video)

    def masks(self, video: Video, exp_id: str, shape: tuple[int, int] | None = None) -> np.ndarray:
        """bool [T, H, W] of one expression; every frame must exist and be ``shape``, by default
        the video's frame size (the first mask's when the split's frames are not present)."""
        shape = shape or video.frame_size_if_present()
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
        """uint8 [T, H, W] stored probabilities of one expression (see masks.quantize_probs), of
        ``shape``, by default the video's frame size when its frames are present."""
        shape = shape or video.frame_size_if_present()
        with self.open_probs(video) as reader:
            return np.stack([reader.frame(exp_id, t, shape) for t in range(len(video.frames))])

    def key_frames(self) -> dict[str, dict[str, Any]]:
        """The run's key_frame.json as stored (``check_key_frames`` checks it against a split)."""
        path = self.root / "key_frame.json"
        if not path.is_file():
            raise InputError(path, "run has no key_frame.json")
        return load_json(path)


class ProbsReader:
    """Reads stored probabilities of one video frame by frame: ``frame(exp_id, t) -> uint8 [H, W]``."""

    def __init__(self, path: Path, video: Video) -> None:
        self.path, self.video = path, video
        try:
            self._file = _h5py().File(path, "r")
        except FileNotFoundError:
            raise InputError(path, "probabilities file is missing") from None
        except OSError as exc:
            raise InputError(path, f"unreadable HDF5 file: {exc}") from None

    def __enter__(self) -> ProbsReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def frame(self, exp_id: str, t: int, shape: tuple[int, int] | None = None) -> np.ndarray:
        """uint8 [H, W] of frame ``t``; the dataset must be uint8 [T, H, W] (and [T, *shape])."""
        return self.dataset(exp_id, shape)[t]

    def dataset(self, exp_id: str, shape: tuple[int, int] | None = None) -> h5py.Dataset:
        """The expression's dataset, checked to be uint8 [T, H, W] (and [T, *shape]); nothing is
        read from it."""
        data = self._file.get(exp_id)
        frames = len(self.video.frames)
        if (
            not isinstance(data, _h5py().Dataset)
            or data.dtype != np.uint8
            or data.ndim != 3
            or data.shape[0] != frames
            or (shape is not None and tuple(data.shape[1:]) != tuple(shape))
        ):
            want = f"[{frames}, {shape[0]}, {shape[1]}]" if shape else f"[{frames}, H, W]"
            raise InputError(self.path, f"expression {exp_id}: expected a uint8 {want} dataset")
        return data

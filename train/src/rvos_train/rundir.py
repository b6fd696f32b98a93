"""The training run folder: what a run writes, how it resumes, and what it refuses.

::

    $(WORK)/train/<run>/
      config.json                  the resolved configuration + model, variant, init checkpoint
                                   (sha256): written when the run starts; a later command on the
                                   same folder with other settings is refused, both values named
      checkpoints/step-NNNNNNNN/   model.pth (the model's upstream checkpoint layout, strict-
                                   loadable by ``make infer-<model>``) + trainer.pt (step,
                                   optimizer, grad scaler, weight average) + ema.pth (the
                                   averaged weights, where the recipe keeps an average: AOT and
                                   DeAOT), written to a staging folder and renamed
      checkpoints/latest           the name of the newest complete checkpoint (written last)
      metrics.jsonl                one JSON object per logged step (rank 0), cut back to the
                                   checkpoint's step on resume
      tensorboard/                 the same scalars as TensorBoard events
      valid/epoch-NNN/             the validation hook's model run and J&F
      model.pth                    the final weights (the average where there is one, as
                                   upstream's next stage and evaluation use it), when every
                                   step is done
      done.json                    written last: the run is finished

A killed run resumes from ``checkpoints/latest`` with the same command; the random state of
every process is a function of (seed, step, slot) (rvos_train.sampling), so the resumed run is
bit-identical to an uninterrupted one on the same machine.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rvos_core.atomic import write_bytes, write_json
from rvos_core.errors import ConfigError, InputError

KEEP_CHECKPOINTS = 2
AVERAGE_FILE = "ema.pth"


@dataclass(frozen=True)
class Resume:
    """A complete checkpoint to continue from: its step and files."""

    step: int
    model: Path
    trainer: Path

    @property
    def average(self) -> Path:
        return self.model.with_name(AVERAGE_FILE)

    @property
    def evaluated(self) -> Path:
        """The weights validation scores: the average where the run keeps one."""
        return self.average if self.average.is_file() else self.model


class RunDir:
    """One training run's folder (see the module docstring); the main process writes it."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.checkpoints = self.root / "checkpoints"
        self._lock: int | None = None

    @property
    def config_file(self) -> Path:
        return self.root / "config.json"

    @property
    def metrics_file(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def final_model(self) -> Path:
        return self.root / "model.pth"

    @property
    def done_file(self) -> Path:
        return self.root / "done.json"

    def claim(self) -> None:
        """Hold the run's lock (one writer at a time); ConfigError when another process has it."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                f"{self.root}: another training process is writing this run"
            ) from None
        self._lock = fd

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def check_settings(self, settings: dict[str, Any]) -> bool:
        """Record ``settings`` on a new run; on an existing one, refuse any difference (both
        values named). True when the run existed."""
        settings = json.loads(json.dumps(settings))  # as the file holds them (tuples as lists)
        if not self.config_file.is_file():
            write_json(self.config_file, settings)
            return False
        recorded = _read_json(self.config_file)
        differences = list(_differences(recorded, settings))
        if differences:
            listed = "; ".join(f"{k}: run has {a!r}, asked {b!r}" for k, a, b in differences[:5])
            raise ConfigError(
                f"{self.root} was trained with other settings ({listed}); use another run "
                "folder or the same settings"
            )
        return True

    def latest(self) -> Resume | None:
        """The newest complete checkpoint, if any."""
        pointer = self.checkpoints / "latest"
        if not pointer.is_file():
            return None
        folder = self.checkpoints / pointer.read_text().strip()
        resume = Resume(_step_of(folder), folder / "model.pth", folder / "trainer.pt")
        for path in (resume.model, resume.trainer):
            if not path.is_file():
                raise InputError(
                    path, "missing: the checkpoint named by checkpoints/latest is incomplete"
                )
        return resume

    def save(
        self,
        step: int,
        model_state: dict[str, Any],
        trainer_state: dict[str, Any],
        average_state: dict[str, Any] | None = None,
    ) -> Path:
        """Write checkpoint ``step`` (staged, renamed, then named in ``latest``); keep the
        newest KEEP_CHECKPOINTS. ``average_state``: the averaged weights (ema.pth)."""
        name = f"step-{step:08d}"
        staged = self.checkpoints / f".staging-{name}"
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir(parents=True)
        torch.save(model_state, staged / "model.pth")
        torch.save(trainer_state, staged / "trainer.pt")
        if average_state is not None:
            torch.save(average_state, staged / AVERAGE_FILE)
        final = self.checkpoints / name
        shutil.rmtree(final, ignore_errors=True)
        staged.rename(final)
        write_bytes(self.checkpoints / "latest", f"{name}\n".encode())
        self._prune()
        return final

    def _prune(self) -> None:
        folders = sorted(p for p in self.checkpoints.glob("step-*") if p.is_dir())
        for old in folders[:-KEEP_CHECKPOINTS]:
            shutil.rmtree(old)

    def finish(self, model_state: dict[str, Any], summary: dict[str, Any]) -> None:
        """Write the final weights, then done.json."""
        buffer = io.BytesIO()
        torch.save(model_state, buffer)
        write_bytes(self.final_model, buffer.getvalue())
        write_json(self.done_file, summary)

    def cut_metrics(self, step: int) -> None:
        """Drop logged steps after ``step`` (they are about to be redone)."""
        if not self.metrics_file.is_file():
            return
        kept = [
            line
            for line in self.metrics_file.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step
        ]
        write_bytes(self.metrics_file, "".join(f"{line}\n" for line in kept).encode())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _step_of(folder: Path) -> int:
    try:
        return int(folder.name.removeprefix("step-"))
    except ValueError:
        raise InputError(folder, "not a checkpoint folder (expected step-NNNNNNNN)") from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not valid JSON ({exc})") from None


def _differences(a: Any, b: Any, prefix: str = ""):
    """(key, value in a, value in b) for every leaf where a and b differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            yield from _differences(a.get(key), b.get(key), f"{prefix}{key}.")
    elif a != b:
        yield prefix.rstrip("."), a, b

"""The tiny zoo: small weights the project trains itself on its generated world (``make zoo``),
shipped in the repository's ``zoo/`` folder, for the demo and for trying the chain without the
released checkpoints.

A zoo folder holds ``manifest.json``, one ``<name>.safetensors`` per model or propagator, and
``pretrained/`` (the tokenizers the models were trained with, PRETRAINED's layout)::

    {"version": 1,
     "world": {...the options of rvos_train.generate, the world's version included...},
     "command": "make zoo",
     "entries": {"soc": {"kind": "model", "file": "soc.safetensors", "sha256": "...",
                         "variant": "tiny", "config": "soc/zoo", "seed": 0, "steps": 2400,
                         "cpu_seconds": 840.0, "jf": {"dataset": "refytvos", "split": "valid",
                         "j": 0.5, "f": 0.6, "jf": 0.55}}, ...}}

``--zoo DIR`` of ``rvos_nn.infer`` and ``rvos_vos.propagate`` takes a name's variant, weights
(checked against the manifest's sha256) and tokenizers from here. Every defect of the folder is an
InputError naming the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rvos_core.errors import ConfigError, InputError

MANIFEST = "manifest.json"
VERSION = 1
KINDS = ("model", "propagator")


@dataclass(frozen=True)
class ZooEntry:
    """One shipped network: its kind, weights file, their sha256 and the variant they fit."""

    name: str
    kind: str
    file: Path
    sha256: str
    variant: str


@dataclass(frozen=True)
class Zoo:
    """A zoo folder read through its manifest (``Zoo.open``)."""

    folder: Path
    manifest: dict[str, Any]
    entries: dict[str, ZooEntry]

    @classmethod
    def open(cls, folder: Path) -> Zoo:
        """The zoo in ``folder``; a missing folder or a bad manifest is an InputError."""
        folder = Path(folder)
        path = folder / MANIFEST
        if not folder.is_dir():
            raise InputError(folder, "--zoo is not a folder")
        if not path.is_file():
            raise InputError(path, "the zoo has no manifest (make zoo writes it)")
        try:
            manifest = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(path, f"not valid JSON: {exc}") from None
        return cls(folder, manifest, _entries(folder, path, manifest))

    def entry(self, name: str, kind: str) -> ZooEntry:
        """The entry of ``name``, which must be of ``kind``."""
        found = self.entries.get(name)
        if found is None or found.kind != kind:
            held = ", ".join(sorted(n for n, e in self.entries.items() if e.kind == kind))
            raise ConfigError(
                f"the zoo {self.folder} has no {kind} {name!r} (it has: {held or 'none'})"
            )
        return found

    def weights(self, name: str, kind: str) -> Path:
        """The weights file of ``name``, after checking that it is the file the manifest names."""
        entry = self.entry(name, kind)
        if not entry.file.is_file():
            raise InputError(entry.file, f"the zoo's weights of {name} are missing")
        if file_sha256(entry.file) != entry.sha256:
            raise InputError(entry.file, f"sha256 differs from the zoo's {MANIFEST}: damaged")
        return entry.file

    @property
    def pretrained(self) -> Path:
        """The tokenizers' folder (PRETRAINED layout) the zoo's models were trained with."""
        return self.folder / "pretrained"


def _entries(folder: Path, path: Path, manifest: Any) -> dict[str, ZooEntry]:
    if not isinstance(manifest, dict) or manifest.get("version") != VERSION:
        raise InputError(path, f"not a zoo manifest of version {VERSION}")
    raw = manifest.get("entries")
    if not isinstance(raw, dict) or not raw:
        raise InputError(path, "'entries' must be a non-empty object {name: entry}")
    entries = {}
    for name, item in raw.items():
        fields = ("kind", "file", "sha256", "variant")
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in fields):
            raise InputError(path, f"entry {name!r} needs the strings {', '.join(fields)}")
        if item["kind"] not in KINDS or Path(item["file"]).name != item["file"]:
            raise InputError(path, f"entry {name!r}: kind in {KINDS}, file a name in the folder")
        entries[name] = ZooEntry(
            name, item["kind"], folder / item["file"], item["sha256"], item["variant"]
        )
    return entries


def shipped_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What a zoo file stores of a state dict: floating tensors in float16, integer tensors whose
    values fit in int16 (index buffers such as Swin's relative positions) in int16 (the loaders
    copy both into the model's own dtypes; the manifest's J&F is that of these weights), other
    tensors as they are, and one key of each group of keys that share a tensor (the heads a model
    holds twice: the strict loader takes the missing copy from its twin)."""
    kept: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int, tuple[int, ...], tuple[int, ...]]] = set()
    for key, value in state.items():
        identity = (
            value.untyped_storage().data_ptr(),
            value.storage_offset(),
            tuple(value.shape),
            value.stride(),
        )
        if identity in seen and value.numel():
            continue
        seen.add(identity)
        kept[key] = _narrowed(value.detach().contiguous())
    return kept


def _narrowed(value: torch.Tensor) -> torch.Tensor:
    if value.is_floating_point():
        return value.half()
    small = torch.iinfo(torch.int16)
    integer = value.dtype in (torch.int32, torch.int64) and value.numel() > 1
    if integer and small.min <= int(value.min()) and int(value.max()) <= small.max:
        return value.to(torch.int16)
    return value.clone()


def write_weights(state: dict[str, torch.Tensor], path: Path) -> Path:
    """``shipped_tensors(state)`` as the safetensors file ``path`` (staged, then renamed)."""
    from safetensors.torch import save_file

    staged = path.with_name(f".{path.name}.tmp")
    save_file(shipped_tensors(state), staged)
    staged.replace(path)
    return path


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(
    zoo: Path | None, name: str, kind: str, *, variant: str | None, checkpoint: Path | None
) -> tuple[str | None, Path | None, Zoo | None]:
    """(variant, checkpoint, zoo) of a driver's ``--zoo``, ``--variant`` and ``--checkpoint``:
    without ``--zoo`` the given values; with it the zoo's, which the others must not contradict."""
    if zoo is None:
        return variant, checkpoint, None
    opened = Zoo.open(zoo)
    if checkpoint is not None:
        raise ConfigError("--zoo and --checkpoint both name weights: give one")
    entry = opened.entry(name, kind)
    if variant is not None and variant != entry.variant:
        raise ConfigError(f"--variant {variant}: the zoo's {name} is variant {entry.variant}")
    return entry.variant, opened.weights(name, kind), opened


def load_model(zoo: Zoo, name: str) -> torch.nn.Module:
    """The zoo's model ``name`` built in its variant and loaded strictly (rvos_nn.checkpoint)."""
    from rvos_nn.checkpoint import load_checkpoint
    from rvos_nn.predictor import load_model_entry

    entry = load_model_entry(name)
    model = entry.build(zoo.entry(name, "model").variant)
    load_checkpoint(model, zoo.weights(name, "model"), entry.checkpoint_rules)
    return model

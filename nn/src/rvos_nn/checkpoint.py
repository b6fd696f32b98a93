"""Checkpoint loading: safe unpickling, key mapping, strict loading with one readable report.

Reading: ``torch.load(weights_only=True, map_location="cpu")`` (memory-mapped for zip-format files)
with an explicit allow-list of extra globals (SAFE_GLOBALS: ``argparse.Namespace`` that
ReferFormer/MUTR pickle under 'args', NumPy scalars and arrays that detectron2 files may hold);
a ``.safetensors`` file (the tiny zoo's format) is read as a bare state dict. Nothing in a
checkpoint is executed.

Mapping, in this order (``CheckpointRules``):
1. the state dict is taken from the first container key present ('model', 'model_state_dict',
   'state_dict'), or the file is a bare state dict;
2. a leading ``module.`` (DataParallel) is stripped, as a prefix only;
3. ordered prefix renames (regex anchored at the start of the key), e.g. SOC's ``voc.`` -> ``vita.``.

Strict loading: every stored key must be a model key of the same shape, or be dropped by a named
ignore rule (legacy buffers, keys upstream stores but never uses); every model key must be stored,
or be allowed by a named allow-missing rule. Tensors the model shares between several keys (heads
stored twice, e.g. ``bbox_embed.*`` and ``transformer.decoder.bbox_embed.*``) are found from the
model itself: the stored copies must be equal, and a copy absent from the file is taken from its
twin. Anything else raises ``CheckpointMismatch`` listing missing / unexpected / mis-shaped keys
grouped by prefix, before a single tensor is copied (no partial load).

The report of a checkpoint against a registered model is a command of its own
(``rvos_nn.checkpoint_report``).
"""

from __future__ import annotations

import argparse
import pickle
import re
import zipfile
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rvos_core.errors import InputError

CONTAINERS = ("model", "model_state_dict", "state_dict")
MODULE_PREFIX = "module."


def _safe_globals() -> list[Any]:
    """Globals a checkpoint may name besides torch's own; each is data, never code."""
    from numpy._core import multiarray

    numeric = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32)
    numeric += (np.uint64, np.float16, np.float32, np.float64, np.complex64, np.complex128)
    dtype_classes = [type(np.dtype(t)) for t in numeric]
    numpy_globals = [
        np.ndarray,
        np.dtype,
        *dtype_classes,
        multiarray.scalar,
        multiarray._reconstruct,
    ]
    # Files written under NumPy 1.x name the same functions under numpy.core.
    legacy = [
        (multiarray.scalar, "numpy.core.multiarray.scalar"),
        (multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
    ]
    return [argparse.Namespace, *numpy_globals, *legacy]


SAFE_GLOBALS = _safe_globals()


@dataclass(frozen=True)
class KeyRule:
    """A named rule over state-dict keys: ``pattern`` is a regex matched against the whole key."""

    name: str
    pattern: str
    reason: str

    def matches(self, key: str) -> bool:
        return re.fullmatch(self.pattern, key) is not None


LEGACY_TEXT_BUFFERS = KeyRule(
    name="legacy-text-buffers",
    pattern=r"(.+\.)?embeddings\.(position_ids|token_type_ids)",
    reason="RoBERTa/BERT buffers saved by transformers < 4.31; not persistent in current transformers",
)


@dataclass(frozen=True)
class CheckpointRules:
    """How a model's upstream checkpoints map onto it (see the module docstring).

    Attributes:
        renames: (prefix regex, replacement) pairs applied in order to every key; the regex is
            anchored at the start of the key; the replacement may use groups (\\1).
        ignore: stored keys the model does not have and that may be dropped (named rules).
        allow_missing: model keys that may be absent from the file (they keep their init).
        containers: dict keys that hold the state dict, tried in order.
    """

    renames: tuple[tuple[str, str], ...] = ()
    ignore: tuple[KeyRule, ...] = (LEGACY_TEXT_BUFFERS,)
    allow_missing: tuple[KeyRule, ...] = ()
    containers: tuple[str, ...] = CONTAINERS


@dataclass
class CheckpointReport:
    """What strict loading found; ``ok`` when the file loads with every key accounted for."""

    source: str
    container: str | None = None
    stored: int = 0
    stripped: int = 0
    renamed: dict[str, int] = field(default_factory=dict)
    ignored: dict[str, list[str]] = field(default_factory=dict)
    allowed_missing: dict[str, list[str]] = field(default_factory=dict)
    shared: list[list[str]] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)
    matched: int = 0
    model_keys: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    misshaped: list[tuple[str, str, str]] = field(default_factory=list)
    unequal: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.misshaped or self.unequal)

    def format(self) -> str:
        """A readable report; long key lists are folded by prefix and by numbered pattern."""
        return "\n".join(_format_report(self))


class CheckpointMismatch(InputError):
    """A checkpoint that does not load strictly; ``report`` holds the details."""

    def __init__(self, report: CheckpointReport) -> None:
        self.report = report
        super().__init__(report.source, "does not match the model\n" + report.format())


# ---------------------------------------------------------------------------------------------
# Reading


def read_checkpoint(path: Path) -> Any:
    """Unpickle ``path`` safely (weights only, allow-listed globals, mmap for zip files); a
    ``.safetensors`` file gives its tensors as a bare state dict."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint file is missing")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    use_mmap = zipfile.is_zipfile(path)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=use_mmap)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc):
            raise InputError(path, _unsafe_message(path, str(exc))) from None
        raise InputError(path, _unreadable(exc)) from None
    except Exception as exc:  # torch raises many types for damaged files; all mean the same here
        raise InputError(path, _unreadable(exc)) from None


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(path, f"not a readable safetensors file: {exc}") from None


def _unreadable(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"not a readable PyTorch checkpoint (truncated, damaged or another format): {first}"


_REFUSED = re.compile(r"GLOBAL ([\w.]+)|got <class '([\w.]+)'>")


def _unsafe_message(path: Path, error: str) -> str:
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # legacy (non-zip) files cannot list their globals
        names = []
    allowed = {_global_name(g) for g in SAFE_GLOBALS}
    extra = sorted(n for n in names if n not in allowed)
    extra = extra or [a or b for a, b in _REFUSED.findall(error)] or ["(unknown)"]
    return (
        f"holds objects of types that are not on the safe allow-list: {', '.join(extra)}. "
        "Nothing was loaded or executed. Re-save the weights alone "
        "(torch.save({'model': state_dict}, path)) from a trusted environment."
    )


def _global_name(entry: Any) -> str:
    if isinstance(entry, tuple):
        return entry[1]
    return f"{entry.__module__}.{entry.__qualname__}"


def extract_state_dict(
    obj: Any, source: Path | str, containers: Sequence[str] = CONTAINERS
) -> tuple[str | None, dict[str, torch.Tensor]]:
    """(container key or None, state dict) from an unpickled checkpoint.

    NumPy arrays are turned into tensors; any other non-tensor value is an InputError.
    """
    if not isinstance(obj, Mapping):
        raise InputError(source, f"checkpoint holds a {type(obj).__name__}, not a dict")
    container = next((c for c in containers if isinstance(obj.get(c), Mapping)), None)
    state = obj[container] if container is not None else obj
    out: dict[str, torch.Tensor] = {}
    bad = []
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(value)
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            bad.append(f"{key!r} ({type(value).__name__})")
            continue
        out[key] = value
    if bad or not out:
        where = f"under {container!r}" if container else "at the top level"
        detail = f"non-tensor entries {', '.join(bad[:5])}" if bad else "no tensors"
        raise InputError(
            source,
            f"no state dict found {where} ({detail}); top-level keys: {_key_list(obj)}; "
            f"expected one of {', '.join(containers)} or a bare state dict",
        )
    return container, out


def _key_list(obj: Mapping[Any, Any]) -> str:
    keys = [repr(k) for k in list(obj)[:8]]
    return ", ".join(keys) + (", ..." if len(obj) > 8 else "")


def map_keys(
    state: Mapping[str, torch.Tensor], rules: CheckpointRules, report: CheckpointReport
) -> dict[str, torch.Tensor]:
    """Strip ``module.`` and apply the renames; two keys mapping to one name is an InputError."""
    renames = [(re.compile(p), r) for p, r in rules.renames]
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for key, value in state.items():
        new = key
        if new.startswith(MODULE_PREFIX):
            new = new[len(MODULE_PREFIX) :]
            report.stripped += 1
        for pattern, repl in renames:
            match = pattern.match(new)
            if match:
                new = match.expand(repl) + new[match.end() :]
                report.renamed[pattern.pattern] = report.renamed.get(pattern.pattern, 0) + 1
        if new in out:
            raise InputError(report.source, f"keys {origin[new]!r} and {key!r} both map to {new!r}")
        out[new], origin[new] = value, key
    return out


# ---------------------------------------------------------------------------------------------
# Comparing and loading


def shared_groups(model: nn.Module) -> list[list[str]]:
    """Groups of state-dict keys that name one tensor in ``model`` (modules shared by two parents)."""
    by_id: dict[int, list[str]] = defaultdict(list)
    for key, value in model.state_dict(keep_vars=True).items():
        by_id[id(value)].append(key)
    return [keys for keys in by_id.values() if len(keys) > 1]


def _describe(t: torch.Tensor) -> str:
    return f"{str(t.dtype).removeprefix('torch.')}{list(t.shape)}"


def _compatible(stored: torch.Tensor, wanted: torch.Tensor) -> bool:
    return (
        stored.shape == wanted.shape
        and stored.is_floating_point() == wanted.is_floating_point()
        and stored.is_complex() == wanted.is_complex()
    )


def compare(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    rules: CheckpointRules,
    report: CheckpointReport,
) -> dict[str, torch.Tensor]:
    """Fill ``report`` from a mapped state dict; return the dict to load (shared copies filled).

    Works on models built on the meta device (only keys, shapes and dtypes are looked at, plus the
    stored values of shared tensors).
    """
    wanted = model.state_dict(keep_vars=True)
    report.model_keys = len(wanted)
    for key, value in state.items():
        if key in wanted:
            if _compatible(value, wanted[key]):
                report.matched += 1
            else:
                report.misshaped.append((key, _describe(value), _describe(wanted[key])))
            continue
        rule = next((r for r in rules.ignore if r.matches(key)), None)
        if rule is None:
            report.unexpected.append(key)
        else:
            report.ignored.setdefault(rule.name, []).append(key)
    loadable = {k: v for k, v in state.items() if k in wanted}
    _check_shared(model, loadable, report)
    for key in wanted:
        if key in loadable:
            continue
        rule = next((r for r in rules.allow_missing if r.matches(key)), None)
        if rule is None:
            report.missing.append(key)
        else:
            report.allowed_missing.setdefault(rule.name, []).append(key)
    return loadable


def _check_shared(
    model: nn.Module, loadable: dict[str, torch.Tensor], report: CheckpointReport
) -> None:
    """Stored copies of a shared tensor must be equal; absent copies are taken from a stored one."""
    for group in shared_groups(model):
        present = [k for k in group if k in loadable]
        if not present:
            continue
        report.shared.append(group)
        first = loadable[present[0]]
        for other in present[1:]:
            value = loadable[other]
            if value.shape != first.shape or not torch.equal(value, first):
                report.unequal.append((present[0], other))
        for absent in group:
            if absent not in loadable:
                loadable[absent] = first
                report.filled.append(absent)
                report.matched += 1


def load_state_dict_strict(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    rules: CheckpointRules | None = None,
    source: str = "state dict",
) -> CheckpointReport:
    """Map ``state`` with ``rules`` and load it into ``model``; CheckpointMismatch on any gap."""
    rules = rules or CheckpointRules()
    report = CheckpointReport(source=source, stored=len(state))
    loadable = compare(model, map_keys(state, rules, report), rules, report)
    if not report.ok:
        raise CheckpointMismatch(report)
    # compare() accounted for every key; only the allowed-missing ones stay at their init.
    model.load_state_dict(loadable, strict=not report.allowed_missing)
    return report


def load_checkpoint(
    model: nn.Module, path: Path, rules: CheckpointRules | None = None
) -> CheckpointReport:
    """Read ``path`` safely and load it strictly into ``model`` (see the module docstring)."""
    rules = rules or CheckpointRules()
    container, state = extract_state_dict(read_checkpoint(path), path, rules.containers)
    try:
        report = load_state_dict_strict(model, state, rules, source=str(path))
    except CheckpointMismatch as exc:
        exc.report.container = container
        raise CheckpointMismatch(exc.report) from None
    report.container = container
    return report


def check_checkpoint(
    model: nn.Module, path: Path, rules: CheckpointRules | None = None
) -> CheckpointReport:
    """The report ``load_checkpoint`` would give, without loading (``model`` may be on meta)."""
    rules = rules or CheckpointRules()
    container, state = extract_state_dict(read_checkpoint(path), path, rules.containers)
    report = CheckpointReport(source=str(path), container=container, stored=len(state))
    compare(model, map_keys(state, rules, report), rules, report)
    return report


# ---------------------------------------------------------------------------------------------
# Report formatting

_NUMBER = re.compile(r"(?<=\.)\d+(?=\.|$)|^\d+(?=\.)")
PATTERNS_PER_PREFIX = 8
LINES = 40


def fold_keys(keys: Iterable[str], patterns_per_prefix: int = PATTERNS_PER_PREFIX) -> list[str]:
    """Fold keys into lines: one per top-level prefix, then numbered components as ``#``.

    ``transformer.encoder.layers.0.norm1.weight`` and ``...layers.1.norm1.weight`` become one line
    ``transformer.encoder.layers.#.norm1.weight  (2: 0-1)`` under ``transformer (n keys)``.
    """
    by_prefix: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for key in keys:
        pattern = _NUMBER.sub("#", key)
        numbers = [m.group() for m in _NUMBER.finditer(key)]
        by_prefix[key.split(".", 1)[0]][pattern].append(".".join(numbers))
    lines = []
    for prefix in sorted(by_prefix):
        patterns = by_prefix[prefix]
        total = sum(len(v) for v in patterns.values())
        lines.append(f"{prefix}.*  ({total} key{'s' if total != 1 else ''})")
        shown = sorted(patterns)[:patterns_per_prefix]
        lines.extend(f"    {p}{_indices(patterns[p])}" for p in shown)
        if len(patterns) > len(shown):
            lines.append(f"    ... {len(patterns) - len(shown)} more patterns")
    return lines


def _indices(values: list[str]) -> str:
    if len(values) == 1 and not values[0]:
        return ""
    shown = ", ".join(values[:6]) + (", ..." if len(values) > 6 else "")
    return f"  ({len(values)}: {shown})"


def _format_report(report: CheckpointReport) -> list[str]:
    where = f" [{report.container!r}]" if report.container else ""
    lines = [f"checkpoint {report.source}{where}: {report.stored} keys stored"]
    if report.stripped:
        lines.append(f"  '{MODULE_PREFIX}' stripped from {report.stripped} keys")
    lines += [f"  renamed {n} keys by ^{p}" for p, n in report.renamed.items()]
    lines += [f"  ignored by rule {n!r}: {len(k)} keys" for n, k in report.ignored.items()]
    lines += [
        f"  allowed missing by rule {n!r}: {len(k)} keys" for n, k in report.allowed_missing.items()
    ]
    if report.shared:
        lines.append(
            f"  shared tensors: {len(report.shared)} groups"
            f" (e.g. {' = '.join(report.shared[0])}); {len(report.filled)} copies filled from a twin"
        )
    lines.append(f"  matched {report.matched} of {report.model_keys} model keys")
    if report.ok:
        lines.append("OK: loads strictly")
        return lines
    lines.append(
        f"MISMATCH: {len(report.missing)} missing, {len(report.unexpected)} unexpected, "
        f"{len(report.misshaped)} mis-shaped, {len(report.unequal)} unequal shared copies"
    )
    if report.model_keys and report.matched < report.model_keys / 2:
        lines.append(
            "  (fewer than half of the model's keys match: a checkpoint of another model?)"
        )
    for title, keys in (("missing", report.missing), ("unexpected", report.unexpected)):
        if keys:
            lines.append(f"{title} ({len(keys)}):")
            lines += [f"  {line}" for line in fold_keys(keys)]
    lines += _capped(
        "mis-shaped (stored vs model)",
        [f"{k}: {s} vs {m}" for k, s, m in report.misshaped],
    )
    lines += _capped("unequal shared copies", [f"{a} != {b}" for a, b in report.unequal])
    return lines


def _capped(title: str, entries: list[str]) -> list[str]:
    if not entries:
        return []
    lines = [f"{title} ({len(entries)}):", *(f"  {e}" for e in entries[:LINES])]
    if len(entries) > LINES:
        lines.append(f"  ... {len(entries) - LINES} more")
    return lines

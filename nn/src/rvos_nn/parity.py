"""``python -m rvos_nn.parity FIXTURE_DIR``: run a parity fixture and compare with its outputs.

A fixture folder (``$RVOS_PARITY_DIR/<name>/``, see each README) is handled by the parity handler
registered for its kind under the entry-point group ``rvos.parity``::

    [project.entry-points."rvos.parity"]
    referformer = "rvos_referformer.parity:referformer_parity"

A handler is ``handler(fixture: Path, check: ParityCheck) -> None``: it builds the component from
the fixture's config.json, strict-loads its state dict (rvos_nn.checkpoint), runs its inputs and
records every comparison with ``check.close(...)`` / ``check.equal(...)``. Tolerances come from the
fixture's README. The same function serves the CLI and the unit tests (``run_fixture``).

The kind of a folder is, in this order: ``--kind``; ``"fixture"`` in manifest.json; ``"fixture"``
or ``"model"`` in config.json; otherwise the longest registered name made of the folder's last
path components joined by dots (``uninext/model/vit`` -> ``uninext.model.vit``, then
``model.vit``, then ``vit``).

Prints one line per comparison (shape, max |difference|, tolerance) and exits 1 when any is
outside its tolerance.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rvos_core import registry
from rvos_core.cli import path_arg, run_main
from rvos_core.command import Parser
from rvos_core.errors import ConfigError, InputError

Handler = Callable[[Path, "ParityCheck"], None]
NAME_DEPTH = 3


@dataclass(frozen=True)
class Comparison:
    """One compared tensor: max |actual - expected| against atol + rtol * |expected|."""

    name: str
    shape: tuple[int, ...]
    max_abs: float
    atol: float
    rtol: float
    ok: bool
    note: str = ""

    def line(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        tol = (
            "exact"
            if self.atol == 0 and self.rtol == 0
            else f"atol {self.atol:g} rtol {self.rtol:g}"
        )
        shape = "x".join(map(str, self.shape)) or "scalar"
        return (
            f"{mark} {self.name:<40} {shape:>16}  max|diff| {self.max_abs:.3g}  ({tol}){self.note}"
        )


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:
            value = value.float()
        return value.numpy()
    return np.asarray(value)


def magnitude_atol(expected: Any, scale: float) -> float:
    """``scale * max|expected|``: the absolute tolerance of a quantity formed as sums of large
    terms that largely cancel (mask logits of a dynamic convolution), whose rounding error follows
    the size of what cancels rather than of the result. Another CPU's kernels sum in another order;
    a tolerance tied to the magnitude holds on any of them."""
    values = np.abs(_as_array(expected).astype(np.float64))
    return scale * float(values.max()) if values.size else 0.0


class ParityCheck:
    """Collects the comparisons of one fixture run."""

    def __init__(self, fixture: Path) -> None:
        self.fixture = fixture
        self.comparisons: list[Comparison] = []

    @property
    def ok(self) -> bool:
        return bool(self.comparisons) and all(c.ok for c in self.comparisons)

    def close(
        self, name: str, actual: Any, expected: Any, *, atol: float = 1e-5, rtol: float = 1e-5
    ) -> Comparison:
        """Record a numeric comparison: ok when |a - e| <= atol + rtol * |e| everywhere."""
        a, e = _as_array(actual), _as_array(expected)
        if a.shape != e.shape:
            note = f"  shape {a.shape} != expected {e.shape}"
            return self._add(Comparison(name, e.shape, float("inf"), atol, rtol, False, note))
        if a.dtype.kind not in "biuf" or e.dtype.kind not in "biuf":
            same = bool(np.array_equal(a, e))
            return self._add(Comparison(name, e.shape, 0.0 if same else float("inf"), 0, 0, same))
        a64, e64 = a.astype(np.float64), e.astype(np.float64)
        diff = np.abs(a64 - e64)
        finite = bool(np.isfinite(a64).all() and np.isfinite(e64).all())
        max_abs = float(diff.max()) if diff.size else 0.0
        within = bool(np.all(diff <= atol + rtol * np.abs(e64))) and finite
        note = "" if finite else "  non-finite values"
        return self._add(Comparison(name, e.shape, max_abs, atol, rtol, within, note))

    def close_to_magnitude(
        self, name: str, actual: Any, expected: Any, *, scale: float, rtol: float
    ) -> Comparison:
        """``close`` with ``atol = magnitude_atol(expected, scale)``."""
        return self.close(name, actual, expected, atol=magnitude_atol(expected, scale), rtol=rtol)

    def equal(self, name: str, actual: Any, expected: Any) -> Comparison:
        """Record an exact comparison (ids, masks, indices, strings)."""
        return self.close(name, actual, expected, atol=0.0, rtol=0.0)

    def _add(self, comparison: Comparison) -> Comparison:
        self.comparisons.append(comparison)
        return comparison

    def format(self) -> str:
        failed = sum(not c.ok for c in self.comparisons)
        lines = [c.line() for c in self.comparisons]
        if not self.comparisons:
            lines.append("FAILED: the handler compared nothing")
        elif failed:
            lines.append(f"FAILED: {failed} of {len(self.comparisons)} outside tolerance")
        else:
            lines.append(f"OK: {len(self.comparisons)} comparisons within tolerance")
        return "\n".join(lines)


def _json_field(path: Path, keys: Sequence[str]) -> str | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        return None
    return next((data[k] for k in keys if isinstance(data.get(k), str)), None)


def fixture_kind(fixture: Path, known: Iterable[str]) -> str:
    """The handler name for ``fixture`` (see the module docstring)."""
    named = _json_field(fixture / "manifest.json", ("fixture",)) or _json_field(
        fixture / "config.json", ("fixture", "model")
    )
    if named is not None:
        return named
    known = set(known)
    parts = fixture.resolve().parts
    for depth in range(min(NAME_DEPTH, len(parts)), 0, -1):
        candidate = ".".join(parts[-depth:])
        if candidate in known:
            return candidate
    raise ConfigError(
        f"{fixture}: cannot tell the fixture kind (no manifest.json/config.json name, no "
        f"registered folder name); registered: {', '.join(sorted(known)) or 'none'}; use --kind"
    )


def load_handler(kind: str) -> Handler:
    handler = registry.load(registry.PARITY, kind, "parity fixture kind")
    if not callable(handler):
        raise ConfigError(f"entry point {kind!r} of {registry.PARITY} is not callable")
    return handler  # type: ignore[return-value]


def run_fixture(fixture: Path, kind: str | None = None) -> ParityCheck:
    """Run the fixture in folder ``fixture`` with its registered handler; return the comparisons."""
    fixture = Path(fixture)
    if not fixture.is_dir():
        raise InputError(fixture, "parity fixture folder does not exist")
    handler = load_handler(kind or fixture_kind(fixture, registry.names(registry.PARITY)))
    check = ParityCheck(fixture)
    handler(fixture, check)
    return check


def _main(argv: Sequence[str] | None) -> int:
    parser = Parser(prog="python -m rvos_nn.parity", description=__doc__)
    parser.add_argument("fixture", type=path_arg, help="a parity fixture folder")
    parser.add_argument("--kind", help="handler name (default: from the folder, see above)")
    args = parser.parse_args(argv)
    check = run_fixture(args.fixture, args.kind)
    print(f"fixture {args.fixture}")
    print(check.format())
    return 0 if check.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())

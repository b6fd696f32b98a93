"""Reports: a table on stdout, a per-expression / per-object CSV and a summary JSON.

Numbers are written at full precision (shortest round-trip repr); NaN is ``nan`` in the CSV and
``null`` in the JSON. Both files are written atomically once everything is computed.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rvos_core.atomic import write_bytes, write_json
from rvos_eval.stats import MEASURES

if TYPE_CHECKING:
    from rvos_eval.davis import ObjectScore
    from rvos_eval.mevis import MevisResult

FORMAT = "rvos-eval/1"
SUMMARY = "summary.json"
OBJECT_COLUMNS = ("run", "sequence", "object", "frames", *MEASURES[1:], "pred_id", "gt_id")


def number(value: float) -> float | None:
    """A JSON number; NaN becomes null."""
    return None if math.isnan(value) else float(value)


def numbers(table: Mapping[str, float]) -> dict[str, float | None]:
    return {key: number(value) for key, value in table.items()}


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """CSV text; floats as repr (nan for NaN)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([repr(float(v)) if isinstance(v, float) else v for v in row])
    return buffer.getvalue().encode()


def mevis_csv(result: MevisResult) -> bytes:
    rows = (
        (e.video, e.exp_id, e.j, e.f, (e.j + e.f) / 2, "missing" if e.missing else "ok")
        for e in result.expressions
    )
    return csv_bytes(("video", "exp_id", "J", "F", "J&F", "prediction"), rows)


def objects_csv(objects: Sequence[ObjectScore]) -> bytes:
    rows = (
        (
            o.run or "",
            o.sequence,
            o.name,
            len(o.frames),
            o.j.mean,
            o.j.recall,
            o.j.decay,
            o.f.mean,
            o.f.recall,
            o.f.decay,
            o.pred_id,
            o.gt_id,
        )
        for o in objects
    )
    return csv_bytes(OBJECT_COLUMNS, rows)


def write_report(out: Path, csv_name: str, csv_data: bytes, summary: dict[str, Any]) -> None:
    """Write ``<out>/<csv_name>`` and ``<out>/summary.json`` (the summary names the CSV)."""
    out.mkdir(parents=True, exist_ok=True)
    write_bytes(out / csv_name, csv_data)
    write_json(out / SUMMARY, {"format": FORMAT, **summary, "table": csv_name})


def text_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Right-aligned columns; floats with 4 decimals."""
    cells = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)

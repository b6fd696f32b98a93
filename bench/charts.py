"""Charts of the benchmarks' figures, ours against the reference, one PNG per stage.

    python bench/charts.py [--results bench/results] [--out bench]

Reads the JSON a benchmark writes with ``--json`` (``<results>/<benchmark>.json``: eval from
bench/eval/run.py, fusion from bench/fusion/run.py, floor from bench/floor/run.py) and draws
``<out>/<benchmark>.png``: a horizontal bar per contender and case, the reference in grey, ours in
blue, each bar labelled with its value and, for ours, the reference's multiple of it. Drawn with
Pillow (no plotting library).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
OURS = "ours"
COLOURS = ((150, 150, 150), (205, 170, 110), (110, 160, 205))  # the references, in order
OUR_COLOUR = (20, 100, 200)
LABEL_WIDTH, BAR_WIDTH, BAR_HEIGHT, GAP, MARGIN = 190, 560, 16, 12, 16


@dataclass(frozen=True)
class Chart:
    """One chart: per case (a group of bars) one value per contender; ``ours`` is drawn last.
    ``speedup``: ours is labelled "<reference / ours>x faster", else "<ours / reference>x" (of a
    floor that ours cannot beat)."""

    title: str
    unit: str
    cases: list[str]
    values: dict[str, list[float]]
    note: str
    speedup: bool


def eval_chart(data: dict[str, Any]) -> Chart:
    """bench/eval/run.py: J and F of one frame, per mask kind and frame size."""
    rows = data["rows"]
    names = list(rows[0]["ms_per_frame"])
    return Chart(
        title="J and F of one frame (bench/eval/run.py)",
        unit="ms per frame, CPU (best of repeats)",
        cases=[f"{r['masks']} {r['size']} ({r['frames']} fr.)" for r in rows],
        values={n: [r["ms_per_frame"][n] for r in rows] for n in names},
        note=data["cpu"],
        speedup=True,
    )


def fusion_chart(data: dict[str, Any]) -> Chart:
    """bench/fusion/run.py: each vote node and the submission against its floor."""
    nodes = data["nodes"]
    return Chart(
        title=f"Votes and submission (bench/fusion/run.py), {data['videos']} videos x 4 expressions x {data['frames']} frames, 720p",
        unit="CPU s",
        cases=list(nodes),
        values={
            "floor: decode + encode alone": [n["floor_cpu_s"] for n in nodes.values()],
            OURS: [n["cpu_s"] for n in nodes.values()],
        },
        note=f"{data['masks_per_node']} masks per node; peak memory {max(n['peak_mib'] for n in nodes.values()):.0f} MiB",
        speedup=False,
    )


def floor_chart(data: dict[str, Any]) -> Chart:
    """bench/floor/run.py: every stage that reads or writes run folders against its floor, per
    added unit (all the inputs against one video's)."""
    stages = data["stages"]
    return Chart(
        title=f"Every run-folder stage against its floor (bench/floor/run.py), {data['inputs']}",
        unit="CPU ms per added unit (all inputs against one video)",
        cases=[f"{name} (per {s['unit']})" for name, s in stages.items()],
        values={
            "floor: read inputs + write outputs": [s["floor_ms_per_unit"] for s in stages.values()],
            OURS: [s["ms_per_unit"] for s in stages.values()],
        },
        note="fixed CPU s per command: "
        + ", ".join(f"{name} {s['fixed_s']:.2f}" for name, s in stages.items()),
        speedup=False,
    )


READERS: dict[str, Callable[[dict[str, Any]], Chart]] = {
    "eval": eval_chart,
    "fusion": fusion_chart,
    "floor": floor_chart,
}


def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def colour_of(name: str, others: list[str]) -> tuple[int, int, int]:
    return OUR_COLOUR if name == OURS else COLOURS[others.index(name) % len(COLOURS)]


def bar_label(chart: Chart, name: str, case: int) -> str:
    """The value; for ours, compared with the first reference (see Chart.speedup)."""
    value = chart.values[name][case]
    if name != OURS:
        return f"{value:.3g}"
    reference = chart.values[next(n for n in chart.values if n != OURS)][case]
    if chart.speedup:
        return f"{value:.3g}  ({reference / value:.1f}x faster)"
    return f"{value:.3g}  ({value / reference:.2f}x the floor)"


def draw(chart: Chart) -> Image.Image:
    """The chart as an RGB image."""
    names = [n for n in chart.values if n != OURS] + [OURS]
    others = names[:-1]
    group = len(names) * BAR_HEIGHT + GAP
    top = MARGIN + 52
    width = MARGIN * 2 + LABEL_WIDTH + BAR_WIDTH + 120
    height = top + group * len(chart.cases) + 40
    image = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(image)
    pen.text((MARGIN, MARGIN), chart.title, fill="black", font=font(15))
    x = MARGIN
    for name in names:
        pen.rectangle((x, MARGIN + 26, x + 12, MARGIN + 38), fill=colour_of(name, others))
        pen.text((x + 16, MARGIN + 24), name, fill="black", font=font(13))
        x += 26 + int(pen.textlength(name, font=font(13)))
    scale = BAR_WIDTH / max(v for values in chart.values.values() for v in values)
    for i, case in enumerate(chart.cases):
        y = top + i * group
        pen.text((MARGIN, y + BAR_HEIGHT // 2), case, fill="black", font=font(13))
        for k, name in enumerate(names):
            left, row = MARGIN + LABEL_WIDTH, y + k * BAR_HEIGHT
            right = left + max(1, round(chart.values[name][i] * scale))
            pen.rectangle(
                (left, row + 1, right, row + BAR_HEIGHT - 2), fill=colour_of(name, others)
            )
            pen.text((right + 4, row + 1), bar_label(chart, name, i), fill="black", font=font(11))
    footer = f"{chart.unit}. {chart.note}"
    pen.text((MARGIN, height - 28), footer, fill=(90, 90, 90), font=font(11))
    return image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=HERE / "results", help="the JSON files")
    parser.add_argument("--out", type=Path, default=HERE, help="where the PNGs go")
    args = parser.parse_args(argv)
    written = 0
    for name, reader in READERS.items():
        source = args.results / f"{name}.json"
        if not source.is_file():
            print(f"{source}: missing (run the benchmark with --json {source}); no chart")
            continue
        draw(reader(json.loads(source.read_text()))).save(args.out / f"{name}.png", optimize=True)
        print(f"wrote {args.out / f'{name}.png'} from {source}")
        written += 1
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())

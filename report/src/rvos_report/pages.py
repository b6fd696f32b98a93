"""The report's HTML: the index (the J&F table, the expressions worst first) and one page per
expression. Static files that open from disk: no server, no network; the index's expression list
is data (``data.js``) that ``assets/report.js`` pages through, and every image loads lazily."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from rvos_core.atomic import write_bytes
from rvos_report.render import KEY_FRAME, TRUTH, VOTED_IN, VOTED_OUT, hex_colour
from rvos_report.results import ExpressionResult, Layout
from rvos_report.sources import Node

ASSETS = ("report.css", "report.js")
CURVE_SIZE = (640, 160)  # width, height of a curve's drawing area in SVG units


def page_path(video: str, exp_id: str) -> str:
    return f"e/{video}/{exp_id}.html"


def image_path(video: str, exp_id: str, t: int) -> str:
    return f"img/{video}/{exp_id}/{t}.jpg"


def video_path(video: str, exp_id: str) -> str:
    return f"mp4/{video}/{exp_id}.mp4"


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def document(title: str, root: str, body: str, scripts: Sequence[str] = ()) -> str:
    """A whole page; ``root`` is the relative path from the page to the report's folder."""
    tags = "".join(f'<script src="{root}{s}"></script>' for s in scripts)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title>"
        f'<link rel="stylesheet" href="{root}assets/report.css"></head>'
        f"<body>{body}{tags}</body></html>\n"
    )


def legend(nodes: Sequence[Node], truth: bool, votes: bool) -> str:
    """Colour swatches of the tiles: the truth, each node, the vote view's colours."""
    items = [(hex_colour(TRUTH), "ground truth")] if truth else []
    items += [(hex_colour(n.colour), n.name) for n in nodes]
    items.append((hex_colour(KEY_FRAME), "key frame (border)"))
    if votes:
        items += [
            (hex_colour(VOTED_IN), "disputed, voted in"),
            (hex_colour(VOTED_OUT), "disputed, voted out"),
        ]
    spans = (f'<span class="sw" style="background:{c}"></span>{esc(n)}' for c, n in items)
    return '<p class="legend">' + " ".join(spans) + "</p>"


def tile_labels(nodes: Sequence[Node], truth: bool, votes: Sequence[int]) -> list[str]:
    """The label of every tile of a frame, left to right (as video.composite draws them)."""
    labels = ["ground truth"] if truth else []
    labels += [n.name for n in nodes]
    return labels + [f"vote {nodes[i].name}: disputed" for i in votes]


def curve_svg(
    series: Sequence[tuple[str, str, Sequence[float]]], key: int | None, label: str
) -> str:
    """An SVG line chart of values in [0, 1] over frames; ``series``: (name, colour, values [T]);
    a dashed line marks the key frame."""
    width, height = CURVE_SIZE
    frames = max(len(values) for _, _, values in series)
    step = width / max(frames - 1, 1)
    parts = [
        f'<svg class="curve" viewBox="-30 -10 {width + 40} {height + 30}" role="img" aria-label="{esc(label)}">',
        f'<rect x="0" y="0" width="{width}" height="{height}" class="plot"/>',
    ]
    for y in (0.0, 0.5, 1.0):
        parts.append(f'<text x="-4" y="{height * (1 - y) + 4:.1f}" class="tick">{y:g}</text>')
    if key is not None:
        x = key * step
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height}" class="key"/>')
    for name, stroke, values in series:
        points = " ".join(f"{t * step:.1f},{height * (1 - v):.1f}" for t, v in enumerate(values))
        parts.append(
            f'<polyline points="{points}" stroke="{stroke}" class="line"><title>{esc(name)}</title></polyline>'
        )
    parts.append(f'<text x="{width / 2}" y="{height + 16}" class="axis">{esc(label)}</text>')
    return "".join(parts) + "</svg>"


def _score_table(nodes: Sequence[Node], result: ExpressionResult) -> str:
    jf = result.jf
    rows = []
    for i, node in enumerate(nodes):
        key = result.key_frames[i]
        cells = [
            f'<td><span class="sw" style="background:{hex_colour(node.colour)}"></span>{esc(node.name)}</td>'
        ]
        if jf is not None and result.j is not None and result.f is not None:
            cells += [
                f"<td>{np.mean(result.j[i]):.3f}</td><td>{np.mean(result.f[i]):.3f}</td><td>{jf[i]:.3f}</td>"
            ]
        cells.append(f"<td>{'-' if key is None else esc(result.frames[key])}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "<th>node</th>" + ("<th>J</th><th>F</th><th>J&amp;F</th>" if jf is not None else "")
    return f'<table class="scores"><thead><tr>{head}<th>key frame</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _curves(nodes: Sequence[Node], result: ExpressionResult) -> str:
    main_key = next((k for k in reversed(result.key_frames) if k is not None), None)
    charts = []
    if result.j is not None and result.f is not None:
        series = [
            (n.name, hex_colour(n.colour), ((np.array(j) + np.array(f)) / 2).tolist())
            for n, j, f in zip(nodes, result.j, result.f, strict=True)
        ]
        charts.append(curve_svg(series, main_key, "J&F per frame"))
    if result.disputed:
        series = [
            (nodes[i].name, hex_colour(nodes[i].colour), v) for i, v in result.disputed.items()
        ]
        charts.append(curve_svg(series, main_key, "share of disputed pixels per frame, per vote"))
    return "".join(charts)


def _frames(layout: Layout, result: ExpressionResult) -> str:
    labels = tile_labels(layout.nodes, result.j is not None, list(result.disputed))
    head = "".join(f"<span>{esc(label)}</span>" for label in labels)
    blocks = []
    for t in result.shown:
        keyed = [n.name for n, k in zip(layout.nodes, result.key_frames, strict=True) if k == t]
        note = (
            f' <span class="keynote">key frame of {esc(", ".join(keyed))}</span>' if keyed else ""
        )
        src = "../../" + image_path(result.video, result.exp_id, t)
        blocks.append(
            f'<figure class="frame"><figcaption>frame {esc(result.frames[t])} (t={t}){note}</figcaption>'
            f'<div class="labels" style="--tiles:{len(labels)}">{head}</div>'
            f'<img loading="lazy" src="{esc(src)}" alt="frame {t}: {esc(", ".join(labels))}"></figure>'
        )
    return "".join(blocks)


def write_expression_page(layout: Layout, result: ExpressionResult, has_video: bool) -> None:
    """Write ``e/<video>/<exp_id>.html``."""
    title = f"{result.video} / {result.exp_id}"
    movie = (
        f'<video controls loop src="../../{esc(video_path(result.video, result.exp_id))}"></video>'
        if has_video
        else ""
    )
    body = (
        f'<p><a href="../../index.html">&larr; all expressions</a></p>'
        f"<h1>{esc(title)}: &ldquo;{esc(result.text)}&rdquo;</h1>"
        + legend(layout.nodes, result.j is not None, bool(result.disputed))
        + _score_table(layout.nodes, result)
        + _curves(layout.nodes, result)
        + movie
        + _frames(layout, result)
    )
    page = document(title, "../../", body)
    write_bytes(layout.out / page_path(result.video, result.exp_id), page.encode())


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def node_rows(nodes: Sequence[Node], results: Sequence[ExpressionResult]) -> list[dict[str, Any]]:
    """Per node: J, F, J&F (means over expressions of the per-expression means) against the
    ground truth, None without it."""
    rows = []
    for i, node in enumerate(nodes):
        row: dict[str, Any] = {"node": node.name, "kind": node.kind, "producer": node.producer}
        if results and results[0].j is not None:
            j = _mean([float(np.mean(r.j[i])) for r in results if r.j is not None])
            f = _mean([float(np.mean(r.f[i])) for r in results if r.f is not None])
            row.update({"J": j, "F": f, "J&F": (j + f) / 2})
        rows.append(row)
    return rows


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f'<td data-v="{value!r}">{value:.4f}</td>'
    return f'<td data-v="{esc(value)}">{esc("-" if value is None else value)}</td>'


def score_table(
    rows: Sequence[dict[str, Any]], evaluations: Sequence[dict[str, Any] | None]
) -> str:
    """The sortable J&F table of the index: one row per node; the report's own J, F, J&F against
    the ground truth, then per benchmark the node's official evaluation (``make evaluate``)."""
    columns = ["node", "kind", "producer"] + [c for c in ("J", "F", "J&F") if c in rows[0]]
    benchmarks = sorted({e["benchmark"] for e in evaluations if e is not None})
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    head += "".join(f"<th>{esc(b)} J&amp;F</th>" for b in benchmarks)
    body = []
    for row, evaluated in zip(rows, evaluations, strict=True):
        cells = [_cell(row[c]) for c in columns]
        for benchmark in benchmarks:
            hit = evaluated is not None and evaluated["benchmark"] == benchmark
            cells.append(_cell(evaluated["J&F"] if hit and evaluated else None))
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table id="nodes" class="scores sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def index_data(nodes: Sequence[Node], results: Sequence[ExpressionResult]) -> dict[str, Any]:
    """The expression list of the index, worst first (data.js)."""
    rows = []
    for r in sorted(results, key=lambda r: (-r.badness, r.video, r.exp_id)):
        key = next((k for k in reversed(r.key_frames) if k is not None), r.shown[0])
        thumb = key if key in r.shown else r.shown[0]
        jf = r.jf
        rows.append(
            {
                "video": r.video,
                "exp": r.exp_id,
                "text": r.text,
                "page": page_path(r.video, r.exp_id),
                "thumb": image_path(r.video, r.exp_id, thumb),
                "jf": None if jf is None else [round(v, 4) for v in jf],
                "agreement": round(r.agreement, 4),
            }
        )
    names = [{"name": n.name, "colour": hex_colour(n.colour)} for n in nodes]
    return {"nodes": names, "rows": rows}


def write_index(
    out: Path,
    title: str,
    nodes: Sequence[Node],
    results: Sequence[ExpressionResult],
    evaluations: Sequence[dict[str, Any] | None],
    truth: bool,
) -> None:
    """Write index.html, data.js and the assets."""
    for name in ASSETS:
        data = resources.files("rvos_report").joinpath("assets", name).read_bytes()
        write_bytes(out / "assets" / name, data)
    data = index_data(nodes, results)
    write_bytes(out / "data.js", f"window.REPORT = {json.dumps(data)};\n".encode())
    measure = (
        "J&amp;F of the last node, lowest first"
        if truth
        else "the nodes' disagreement (1 - mean pairwise IoU), highest first"
    )
    votes = any(n.vote_inputs for n in nodes)
    body = (
        f"<h1>{esc(title)}</h1>"
        + legend(nodes, truth, votes)
        + "<h2>Nodes</h2>"
        + score_table(node_rows(nodes, results), evaluations)
        + f"<h2>Expressions, worst first</h2><p>Ranked by {measure}. {len(results)} expressions.</p>"
        + '<nav class="pager"></nav><table id="expressions" class="scores"></table><nav class="pager"></nav>'
    )
    write_bytes(
        out / "index.html", document(title, "", body, ["data.js", "assets/report.js"]).encode()
    )

"""The report as a person sees it: Debian's headless Chromium opens it from disk, runs its
JavaScript and draws it. Skipped, with the reason, where chromium is not installed or cannot
start (.ci/run installs it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from report_testlib import NODES, report_data

from rvos_report.render import KEY_FRAME

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=5000")  # fmt: skip


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert BROWSER is not None
    return subprocess.run(
        [BROWSER, *FLAGS, *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def browser() -> None:
    if BROWSER is None:
        pytest.skip("headless browser test: chromium is not installed (apt-get install chromium)")
    probe = chromium("--dump-dom", "data:text/html,<p id=probe>ok</p>")
    if probe.returncode != 0 or 'id="probe"' not in probe.stdout:
        reason = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"headless browser test: chromium cannot run here ({reason})")


def rows(html: str, table_id: str) -> list[list[str]]:
    """The text of each body row's cells of table ``table_id``."""
    table = re.search(rf'<table id="{table_id}".*?</table>', html, re.S)
    assert table is not None, table_id
    body = re.search(r"<tbody>(.*)</tbody>", table.group(0), re.S)
    assert body is not None
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)]  # fmt: skip
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in row] for row in cells]


def test_the_index_draws_its_tables(browser: None, report: Path) -> None:
    dom = chromium("--dump-dom", (report / "index.html").as_uri()).stdout
    assert [r[0] for r in rows(dom, "nodes")] == NODES
    listed = rows(dom, "expressions")  # built by report.js from data.js
    data = report_data(report)["rows"]
    assert [r[2] for r in listed] == [f"{d['video']} / {d['exp']}" for d in data]
    assert [r[4] for r in listed] == ["1.000"] * len(data)  # node "exact" is the truth
    assert "page 1 of 1" in dom
    assert len(re.findall(r'<img class="thumb" loading="lazy"', dom)) == len(data)


def test_an_expression_page_shows_its_overlays(browser: None, report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "page.png"
    page = (report / "e" / "vid0" / "1.html").as_uri()
    done = chromium(f"--screenshot={shot}", "--window-size=1200,2400", page)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    key = np.abs(pixels - np.array(KEY_FRAME)).max(axis=2) < 40
    # the key frame's border around three tiles: thousands of pixels (the legend's swatch: ~200)
    assert key.sum() > 2000

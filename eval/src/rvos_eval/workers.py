"""The default number of worker processes: a pool only where it saves more time than it costs.

A worker costs its start-up in CPU time (a spawned interpreter importing numpy, OpenCV and this
package) and the hand-over of its results: ``WORKER_START_S``, the extra CPU of a pool per worker
(measured 0.18-0.42 s, the upper end taken). On ``work`` CPU seconds of evaluation, w workers on
free CPUs take about ``start + work / w`` of wall time instead of ``work``: they save
``work * (1 - 1 / w) - start`` seconds and cost ``w * start`` CPU seconds.
The default takes the most workers (up to one per CPU, at most 8) that save at least what they
cost, with the work estimated from the mask pixels to read (``SECONDS_PER_PIXEL``, the cheapest
case measured: DAVIS semi-supervised at 720p, so the estimate errs towards fewer workers). Both
constants were measured by ``bench/eval/end_to_end.py`` (bench/README.md). Two workers need
``work >= 6 * start``, about 2.6 G mask pixels: ~3100 annotated frames at 480p, ~1400 at 720p; a
set of 6 sequences x 30 frames runs in one process.
"""

from __future__ import annotations

from rvos_core.parallel import default_workers

WORKER_START_S = 0.3
SECONDS_PER_PIXEL = 0.7e-9


def pool_size(pixels: int, cpus: int | None = None) -> int:
    """Workers for an evaluation that reads ``pixels`` mask pixels in all (1: no pool).

    ``cpus`` caps the count (default: rvos_core.parallel.default_workers()).
    """
    work = pixels * SECONDS_PER_PIXEL
    limit = default_workers() if cpus is None else cpus
    useful = [w for w in range(2, limit + 1) if work * (1 - 1 / w) >= (w + 1) * WORKER_START_S]
    return max(useful, default=1)

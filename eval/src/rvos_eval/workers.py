"""The default number of worker processes: a pool only where it saves more time than it costs.

A worker costs its start-up in CPU time (a spawned interpreter importing numpy, OpenCV and this
package: ``WORKER_START_S``), and w workers save at most ``work * (1 - 1 / w)`` seconds of wall
time on ``work`` CPU seconds of evaluation. The default takes the most workers (up to one per CPU,
at most 8) whose start-up costs no more CPU than they save in wall time, with the work estimated
from the mask pixels to read (``SECONDS_PER_PIXEL``, the cost of the cheapest case, DAVIS
semi-supervised, so the estimate errs towards fewer workers). Both constants were measured by
``bench/eval/end_to_end.py`` (bench/README.md): on a DAVIS-2017-sized set (6 sequences x 30 frames)
this is one process at 480p and at 720p.
"""

from __future__ import annotations

from rvos_core.parallel import default_workers

WORKER_START_S = 0.2
SECONDS_PER_PIXEL = 1.0e-9


def pool_size(pixels: int, cpus: int | None = None) -> int:
    """Workers for an evaluation that reads ``pixels`` mask pixels in all (1: no pool).

    ``cpus`` caps the count (default: rvos_core.parallel.default_workers()).
    """
    work = pixels * SECONDS_PER_PIXEL
    limit = default_workers() if cpus is None else cpus
    useful = [w for w in range(2, limit + 1) if work * (1 - 1 / w) >= w * WORKER_START_S]
    return max(useful, default=1)

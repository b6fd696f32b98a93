"""What a torch-free command does before anything imports NumPy.

The torch-free stages (votes, imports, submission, evaluation) never multiply matrices, yet
importing NumPy starts OpenBLAS's thread pool, one thread per core, which costs about 0.1 s of CPU
per process (measured: ``python -m rvos_fusion vote -h`` 0.26 -> 0.16 CPU s). Their parallelism is
the worker pool, which inherits the setting. A value the user set is kept.
"""

from __future__ import annotations

import os

BLAS_THREADS = ("OPENBLAS_NUM_THREADS",)


def single_threaded_blas() -> None:
    """Ask BLAS for one thread unless the environment says otherwise; call before NumPy is
    imported (it has no effect afterwards)."""
    for name in BLAS_THREADS:
        os.environ.setdefault(name, "1")

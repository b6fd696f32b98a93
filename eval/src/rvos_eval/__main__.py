"""``python -m rvos_eval``: see rvos_eval.cli."""

from rvos_core.startup import single_threaded_blas

single_threaded_blas()

from rvos_eval.cli import main  # noqa: E402  (after the BLAS setting: it imports NumPy)

raise SystemExit(main())

"""``python -m rvos_eval``: see rvos_eval.cli."""

from rvos_eval.cli import main

raise SystemExit(main())

"""python -m rvos_fusion"""

import sys

from rvos_core.startup import single_threaded_blas

single_threaded_blas()

from rvos_fusion.cli import main  # noqa: E402  (after the BLAS setting: it imports NumPy)

sys.exit(main())

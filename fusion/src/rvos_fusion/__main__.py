"""python -m rvos_fusion"""

import sys

from rvos_fusion.cli import main

sys.exit(main())

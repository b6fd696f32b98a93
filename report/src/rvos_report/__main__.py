import sys

from rvos_report.cli import main

sys.exit(main())

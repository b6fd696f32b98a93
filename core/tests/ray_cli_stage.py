"""A stage whose class is defined in a module run as a command, as rvos_nn.infer's is:
``python -m ray_cli_stage OUT DATA`` runs it over the valid split of DATA (test_ray_pool)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from core_testlib import ConstantStage

from rvos_core.data import open_dataset
from rvos_core.runfolder import RunRecord
from rvos_core.runner import Target, run_stage


@dataclass
class CommandStage(ConstantStage):
    """ConstantStage with its record cached, as the stages of the commands cache theirs."""

    @cached_property
    def record(self) -> RunRecord:  # type: ignore[override]
        return ConstantStage().record


if __name__ == "__main__":
    out, data = Path(sys.argv[1]), Path(sys.argv[2])
    sys.exit(
        0 if run_stage(CommandStage(), Target(out, open_dataset("refytvos", data, "valid"))) else 1
    )

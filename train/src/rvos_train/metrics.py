"""What a training run reports: one JSON object per logged step in ``metrics.jsonl`` and the same
scalars as TensorBoard events (``tensorboard --logdir RUN/tensorboard``), written by the main
process only."""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import Any

from torch.utils.tensorboard import SummaryWriter


class MetricsLog:
    """Append-only metrics of one run; ``start_step``: TensorBoard drops events after it (a resumed
    run redoes them)."""

    def __init__(self, root: Path, metrics_file: Path, start_step: int):
        self.metrics_file = metrics_file
        self.board = SummaryWriter(str(root / "tensorboard"), purge_step=start_step + 1)

    def log(self, step: int, record: dict[str, Any]) -> None:
        """One line ``{"step": step, ...record}``; every number also as scalar ``key``."""
        line = json.dumps({"step": step, **record}, sort_keys=False)
        with self.metrics_file.open("a") as handle:
            handle.write(line + "\n")
        for key, value in record.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.board.add_scalar(key, value, step)

    def close(self) -> None:
        self.board.close()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

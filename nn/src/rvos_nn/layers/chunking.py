"""Row-chunked evaluation of per-token functions, to bound the memory of wide hidden layers.

A feed-forward block on T * h * w tokens of a whole clip (e.g. 36 frames at stride 4: 518k tokens
x 2048 hidden channels = 4.2 GB in float32) needs only one chunk of its hidden activations at a
time. Every row is computed exactly as without chunking.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

ROWS = 1 << 14


def rowwise(fn: Callable[[Tensor], Tensor], x: Tensor, rows: int | None = None) -> Tensor:
    """``fn(x)`` for a function that treats every row of ``x`` [..., C] independently, evaluated
    ``rows`` (default ROWS) rows at a time. Returns [..., C_out]."""
    rows = ROWS if rows is None else rows
    flat = x.reshape(-1, x.shape[-1])
    if flat.shape[0] <= rows:
        return fn(x)
    first = fn(flat[:rows])
    out = torch.empty((flat.shape[0], first.shape[-1]), dtype=first.dtype, device=first.device)
    out[:rows] = first
    for start in range(rows, flat.shape[0], rows):
        out[start : start + rows] = fn(flat[start : start + rows])
    return out.view(*x.shape[:-1], out.shape[-1])

"""Device and numeric precision of inference: fp32 by default, bf16 / fp16 autocast on request."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from rvos_core.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N``; CUDA without a CUDA device is a ConfigError."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r} is not a device (use cpu or cuda)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA device is available here")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {name}: only cpu and cuda are supported")
    return device


def check_precision(precision: str, device: torch.device) -> str:
    """``precision`` if it can run on ``device``: fp16 needs CUDA; bf16 runs on both."""
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("--precision fp16 needs --device cuda (use fp32 or bf16 on the CPU)")
    return precision


@contextlib.contextmanager
def inference_context(device: torch.device, precision: str) -> Iterator[None]:
    """``torch.inference_mode`` plus autocast to bf16 / fp16 (nothing extra for fp32)."""
    with torch.inference_mode():
        if precision == "fp32":
            yield
        else:
            with torch.autocast(device_type=device.type, dtype=_DTYPES[precision]):
                yield

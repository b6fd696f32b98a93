"""Forward hooks that record sub-module outputs (parity handlers compare them with upstream's)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from torch import nn


class ForwardRecorder:
    """Keeps every output of the named sub-modules of ``model``, in call order, in ``calls``.

    Use as a context manager (the hooks are removed on exit) or call ``remove()``.
    """

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        self.calls: dict[str, list[Any]] = {name: [] for name in names}
        self.handles = [
            model.get_submodule(name).register_forward_hook(self._hook(name)) for name in names
        ]

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            self.calls[name].append(output)

        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def __enter__(self) -> ForwardRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.remove()

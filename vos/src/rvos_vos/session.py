"""A propagation session: the state upstream's ``AOTEngine`` / ``DeAOTEngine`` keep, for one view
(or a batch of views of one size), around a stateless network.

Upstream: ``networks/engines/aot_engine.py`` (competition copy, RobertLuo1/iccv2023_RVOS_Challenge
@ c538b0d) and ``networks/engines/{aot,deaot}_engine.py`` (yoxu515/aot-benchmark @ 75e46fe).

Memory schedule (upstream's): a reference frame is added to the long-term memory and becomes the
short-term memory; every propagated frame, once its label is committed, becomes the short-term
memory, and joins the long-term memory when ``frame_step - last_mem_step >= gap``. New long-term
entries go in front. The step counter keeps running across reference frames; what a reference sets
``last_mem_step`` to differs between the two code bases (``MemoryPolicy.reference_resets_step``):
the competition's AOT copy sets it to 0, aot-benchmark 75e46fe (DeAOT) to the running step.
Upstream memory grows without bound; ``max_long_term`` caps it (our addition, off by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rvos_core.errors import ConfigError
from rvos_vos.network import Entries, PropagationNet


@dataclass(frozen=True)
class MemoryPolicy:
    """How the memory grows.

    Attributes:
        long_term_gap: a propagated frame joins the long-term memory when at least this many steps
            passed since the last entry (upstream TEST_LONG_TERM_MEM_GAP).
        reference_resets_step: a reference frame sets the last entry step to 0 (competition AOT)
            instead of the running step (aot-benchmark 75e46fe, DeAOT).
        max_long_term: at most this many frames in the long-term memory (None: unbounded, as
            upstream). When exceeded, the oldest frame that is not a reference frame is dropped;
            reference frames always stay.
    """

    long_term_gap: int = 5
    reference_resets_step: bool = True
    max_long_term: int | None = None

    def __post_init__(self) -> None:
        if self.long_term_gap < 1:
            raise ConfigError("the long-term memory gap must be >= 1")
        if self.max_long_term is not None and self.max_long_term < 2:
            raise ConfigError("--max-long-term must be >= 2 (the key frame is stored twice)")


class LongTermMemory:
    """Per-layer tensors [frames·tokens, N, C] (newest frame first) and which frames are pinned."""

    def __init__(self, entries: Entries, pinned: bool) -> None:
        self.layers: Entries = list(entries)
        self.tokens = entries[0][0].shape[0]
        self.pinned = [pinned]

    @property
    def frames(self) -> int:
        return len(self.pinned)

    def add(self, entries: Entries, pinned: bool) -> None:
        self.layers = [
            tuple(torch.cat([new, old], dim=0) for new, old in zip(e, m, strict=True))
            for e, m in zip(entries, self.layers, strict=True)
        ]
        self.pinned.insert(0, pinned)

    def drop_oldest_unpinned(self) -> bool:
        """Remove the oldest frame that is not pinned; False if every frame is pinned."""
        index = next((i for i in reversed(range(self.frames)) if not self.pinned[i]), None)
        if index is None:
            return False
        start, stop = index * self.tokens, (index + 1) * self.tokens
        self.layers = [
            tuple(torch.cat([t[:start], t[stop:]], dim=0) for t in layer) for layer in self.layers
        ]
        del self.pinned[index]
        return True


class Session:
    """Propagation state of one view batch: reference frames, steps, committed labels.

    The caller encodes the frames (``net.encode``), so that several sessions of the same views
    can share one encoding of a frame (``procedure.lockstep``).

    Args:
        net: the stateless network.
        policy: the memory schedule.
        live_ids: decoded identities 1..live_ids stay live; higher ones get logit -1e10 (-1e4 below
            fp32), as upstream's decoder does for ids above the object count.

    ``features`` / ``embs`` hold the last frame's encoder maps and layer outputs (for inspection
    and the parity checks); ``frame_step``, ``last_mem_step`` and ``long`` are upstream's counters
    and memory.
    """

    def __init__(self, *, net: PropagationNet, policy: MemoryPolicy, live_ids: int) -> None:
        self.net, self.policy, self.live_ids = net, policy, live_ids
        self.frame_step = 0
        self.last_mem_step = -1
        self.long: LongTermMemory | None = None
        self.short: Entries | None = None
        self.pos: Tensor | None = None
        self._raw: Entries | None = None
        self.features: list[Tensor] | None = None
        self.embs: list[Tensor] | None = None

    @property
    def long_term_frames(self) -> int:
        return 0 if self.long is None else self.long.frames

    def add_reference(self, features: list[Tensor], labels: Tensor) -> None:
        """features: ``net.encode`` of the images [N, 3, H, W]; labels: int [N, 1, H, W] ids at
        the image size."""
        if self.pos is None:
            self.pos = self.net.position_embedding(features[-1])
        id_emb = self.net.id_embedding(labels)
        self.embs, entries = self.net.propagate(features, None, None, id_emb, self.pos)
        self.features = features
        if self.long is None:
            self.long = LongTermMemory(entries, pinned=True)
        else:
            self.long.add(entries, pinned=True)
        self.last_mem_step = 0 if self.policy.reference_resets_step else self.frame_step
        self.short = entries
        self._cap()

    def step(self, features: list[Tensor]) -> Tensor:
        """Propagate the memory to a new frame (``net.encode`` of its images [N, 3, H, W]);
        returns id logits [N, ids, H/4, W/4]."""
        if self.long is None or self.short is None or self.pos is None:
            raise RuntimeError("add a reference frame before stepping")
        self.frame_step += 1
        self.embs, self._raw = self.net.propagate(
            features, self.long.layers, self.short, None, self.pos
        )
        self.features = features
        logits = self.net.decode(self.embs, features)
        low = -1e10 if logits.dtype == torch.float32 else -1e4
        logits[:, self.live_ids + 1 :] = low
        return logits

    def commit(self, labels: Tensor) -> None:
        """Store the last stepped frame with its labels (int [N, 1, H, W]) in the memory."""
        if self._raw is None or self.long is None:
            raise RuntimeError("commit follows a step")
        entries = self.net.memorize(self._raw, self.net.id_embedding(labels))
        self._raw = None
        self.short = entries
        if self.frame_step - self.last_mem_step >= self.policy.long_term_gap:
            self.long.add(entries, pinned=False)
            self.last_mem_step = self.frame_step
            self._cap()

    def _cap(self) -> None:
        limit = self.policy.max_long_term
        while limit is not None and self.long is not None and self.long.frames > limit:
            if not self.long.drop_oldest_unpinned():
                break

"""Several expressions of a video propagated together (``procedure.lockstep``): each track gets the
labels it gets alone (``bidirectional``), bit for bit, and each frame is encoded once per pass."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from rvos_vos.aot import build
from rvos_vos.network import PropagationNet
from rvos_vos.procedure import MultiViewTracker, Track, bidirectional, lockstep
from rvos_vos.propagators import load_propagator
from rvos_vos.session import MemoryPolicy
from rvos_vos.views import ViewConfig, make_views

SIZE = (64, 96)
COUNT = 7
VIEWS = ViewConfig(scales=(0.8, 1.0), flip=True, max_size=96)


def _setup() -> tuple[PropagationNet, Callable[[int], list[torch.Tensor]]]:
    """The tiny AOT (seeded random weights) and a clip of COUNT textured frames: t -> views."""
    torch.manual_seed(0)
    net = build("tiny").eval()
    rng = np.random.default_rng(0)
    frames = [rng.uniform(0, 255, (*SIZE, 3)).astype(np.float32) for _ in range(COUNT)]
    return net, lambda t: make_views(frames[t], VIEWS)


def _tracker(net: PropagationNet) -> MultiViewTracker:
    return MultiViewTracker(
        net=net,
        policy=MemoryPolicy(long_term_gap=2),
        live_ids=load_propagator("aot").live_ids(net.config, objects=1),
        views=VIEWS,
        size=SIZE,
    )


def _label(top: int, left: int) -> torch.Tensor:
    label = torch.zeros(SIZE, dtype=torch.long)
    label[top : top + 24, left : left + 40] = 1
    return label


KEYS = {0: _label(4, 8), 3: _label(30, 40), COUNT - 1: _label(20, 20), 2: _label(10, 50)}


def test_lockstep_gives_each_track_its_own_labels_bit_for_bit() -> None:
    net, frames = _setup()
    with torch.no_grad():
        alone = {
            key: list(bidirectional(_tracker(net), frames, key, label, COUNT))
            for key, label in KEYS.items()
        }
        tracks = [Track(_tracker(net), key, label) for key, label in KEYS.items()]
        together: dict[int, list[tuple[int, torch.Tensor]]] = {key: [] for key in KEYS}
        for i, t, label in lockstep(tracks, frames, COUNT):
            together[tracks[i].key].append((t, label))
    for key in KEYS:
        assert [t for t, _ in together[key]] == [t for t, _ in alone[key]]
        for (t, ours), (_, theirs) in zip(together[key], alone[key], strict=True):
            assert torch.equal(ours, theirs), f"key {key}, frame {t}"
    predicted = torch.stack([label for key in KEYS for _, label in alone[key]])
    assert predicted.any() and not predicted.all()  # the labels are not trivially constant


def test_each_frame_is_encoded_once_per_pass() -> None:
    net, frames = _setup()
    calls: list[int] = []
    encode = net.encode

    def counting(image: torch.Tensor) -> list[torch.Tensor]:
        calls.append(image.shape[-1])
        return encode(image)

    net.encode = counting  # type: ignore[method-assign]
    with torch.no_grad():
        tracks = [Track(_tracker(net), key, label) for key, label in KEYS.items()]
        list(lockstep(tracks, frames, COUNT))
        together, calls[:] = len(calls), []
        for key, label in KEYS.items():
            list(bidirectional(_tracker(net), frames, key, label, COUNT))
    forward = COUNT - min(KEYS)  # frames min key .. T-1
    backward = max(k for k in KEYS if k > 0) + 1  # frames max key .. 0
    assert together == (forward + backward) * len(VIEWS.scales)
    # alone: every frame once per track, the key frame once per pass (twice when both run)
    assert len(calls) == sum(COUNT + (0 < k < COUNT - 1) for k in KEYS) * len(VIEWS.scales)


def test_a_single_frame_or_no_track_yields_nothing() -> None:
    net, frames = _setup()
    with torch.no_grad():
        assert list(lockstep([Track(_tracker(net), 0, _label(0, 0))], frames, 1)) == []
        assert list(lockstep([], frames, COUNT)) == []

"""The competition's key-frame bidirectional propagation, written once for AOT and DeAOT.

Upstream: ``networks/managers/bidirectional_evaluator.py`` (``Evaluator.evaluating`` / ``forward``)
of RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d (``soc_test/AOT``). For one (video, expression)
with key frame k and its mask:

* forward pass (if k < T-1): the key frame is the reference of every view, frames k+1..T-1 are
  predicted in order; backward pass (if k > 0): the key frame is added as reference again to the
  SAME sessions (memory and step counter continue, the long-term memory holds the key frame
  twice), frames k-1..0 are predicted. Every non-key frame is predicted exactly once.
* each prediction: every view steps, its logits are upsampled (bilinear) to the frame size,
  un-mirrored, soft-maxed; the views' probabilities are averaged; label = argmax (ties to the
  lower id); the label (mirrored for mirrored views, nearest-resized) is committed to every view.
* the key frame is never predicted (the caller keeps the input run's mask).

``lockstep`` runs the expressions of a video together: each pass visits the frames once and
encodes each frame once for all of them (the encoder is most of a frame's cost), while every
expression's tracker receives exactly the calls ``bidirectional`` makes, in the same order, so the
labels are the same (bit for bit: one encoding of a frame is the same tensor as another).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from rvos_vos.network import PropagationNet, upsample_logits
from rvos_vos.session import MemoryPolicy, Session
from rvos_vos.views import ViewConfig, view_labels

# The views of one frame: one [B, 3, h, w] tensor per scale (see views.make_views).
FrameViews = list[Tensor]
# Their encoder maps: per scale, the 4 maps of PropagationNet.encode.
EncodedViews = list[list[Tensor]]


class MultiViewTracker:
    """The views of one sequence: a Session per scale, the mirrored view batched with the plain one.

    Args:
        net: the network; policy: memory schedule; live_ids: see Session.
        views: the view configuration; size: (H, W) of the frames.
    """

    def __init__(
        self,
        *,
        net: PropagationNet,
        policy: MemoryPolicy,
        live_ids: int,
        views: ViewConfig,
        size: tuple[int, int],
    ) -> None:
        self.views, self.size = views, size
        self.net = net
        self.view_sizes = views.sizes(*size)
        self.sessions = [
            Session(net=net, policy=policy, live_ids=live_ids) for _ in self.view_sizes
        ]
        self.last_lowres: list[Tensor] = []

    def encode(self, frame: FrameViews) -> EncodedViews:
        """The encoder maps of a frame's views (shareable by trackers of the same net and views)."""
        return [self.net.encode(image) for image in frame]

    def add_reference(self, frame: EncodedViews, label: Tensor) -> None:
        """frame: the encoded views of the reference frame; label: int [H, W] ids at its size."""
        for session, features, size in zip(self.sessions, frame, self.view_sizes, strict=True):
            session.add_reference(features, view_labels(label, size, self.views.flip))

    def predict(self, frame: EncodedViews) -> Tensor:
        """Average over views of the id probabilities, float32 [ids, H, W].

        ``last_lowres`` keeps each scale's logits [B, ids, h/4, w/4] (mirrored views still mirrored).
        """
        total = torch.zeros(())
        self.last_lowres = []
        for session, features in zip(self.sessions, frame, strict=True):
            lowres = session.step(features)
            self.last_lowres.append(lowres)
            logits = upsample_logits(lowres, self.size)
            if self.views.flip:
                logits[1] = logits[1].flip(-1)
            probs = torch.softmax(logits, dim=1).sum(dim=0)
            total = total.to(probs.device) + probs
        return total / (len(self.sessions) * self.views.per_scale)

    def commit(self, label: Tensor) -> None:
        """Store the last predicted frame with its label int [H, W] in every view's memory."""
        for session, size in zip(self.sessions, self.view_sizes, strict=True):
            session.commit(view_labels(label, size, self.views.flip))


@dataclass(frozen=True)
class Track:
    """One sequence to propagate: its tracker, key frame index and key label int [H, W]."""

    tracker: MultiViewTracker
    key: int
    label: Tensor


def bidirectional(
    tracker: MultiViewTracker,
    frames: Callable[[int], FrameViews],
    key: int,
    key_label: Tensor,
    count: int,
) -> Iterator[tuple[int, Tensor]]:
    """Propagate ``key_label`` (int [H, W]) from frame ``key`` over a ``count``-frame sequence.

    Args:
        frames: t -> the views of frame t (called on demand; the key frame once per pass).

    Yields:
        (t, label int64 [H, W]) for every t != key: first k+1..T-1, then k-1..0.
    """
    for _, t, label in lockstep([Track(tracker, key, key_label)], frames, count):
        yield t, label


def lockstep(
    tracks: Sequence[Track], frames: Callable[[int], FrameViews], count: int
) -> Iterator[tuple[int, int, Tensor]]:
    """``bidirectional`` for several tracks of one sequence (same net and views), frame by frame.

    Forward pass: t runs from the smallest key up; a track whose key is t takes frame t as its
    reference, every track whose key is below t predicts it. Backward pass: t runs down from the
    largest key; a track whose key is t adds its reference again, every track whose key is above t
    predicts it. Each visited frame is read and encoded once per pass.

    Yields:
        (track index, t, label int64 [H, W]): each track's frames in ``bidirectional``'s order.
    """
    for forward in (True, False):
        live = [i for i, tr in enumerate(tracks) if (tr.key < count - 1 if forward else tr.key > 0)]
        if not live:
            continue
        keys = [tracks[i].key for i in live]
        order = range(min(keys), count) if forward else range(max(keys), -1, -1)
        for t in order:
            starting = [i for i in live if tracks[i].key == t]
            stepping = [i for i in live if (tracks[i].key < t if forward else tracks[i].key > t)]
            encoded = tracks[live[0]].tracker.encode(frames(t))
            for i in starting:
                tracks[i].tracker.add_reference(encoded, tracks[i].label)
            for i in stepping:
                label = tracks[i].tracker.predict(encoded).argmax(dim=0)
                tracks[i].tracker.commit(label)
                yield i, t, label

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
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from rvos_vos.network import PropagationNet, upsample_logits
from rvos_vos.session import MemoryPolicy, Session
from rvos_vos.views import ViewConfig, view_labels

# The views of one frame: one [B, 3, h, w] tensor per scale (see views.make_views).
FrameViews = list[Tensor]


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
        self.view_sizes = views.sizes(*size)
        self.sessions = [
            Session(net=net, policy=policy, live_ids=live_ids) for _ in self.view_sizes
        ]
        self.last_lowres: list[Tensor] = []

    def add_reference(self, frame: FrameViews, label: Tensor) -> None:
        """frame: the views of the reference frame; label: int [H, W] ids at the frame size."""
        for session, image, size in zip(self.sessions, frame, self.view_sizes, strict=True):
            session.add_reference(image, view_labels(label, size, self.views.flip))

    def predict(self, frame: FrameViews) -> Tensor:
        """Average over views of the id probabilities, float32 [ids, H, W].

        ``last_lowres`` keeps each scale's logits [B, ids, h/4, w/4] (mirrored views still mirrored).
        """
        total = torch.zeros(())
        self.last_lowres = []
        for session, image in zip(self.sessions, frame, strict=True):
            lowres = session.step(image)
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
    passes = []
    if key < count - 1:
        passes.append(range(key + 1, count))
    if key > 0:
        passes.append(range(key - 1, -1, -1))
    for order in passes:
        tracker.add_reference(frames(key), key_label)
        for t in order:
            label = tracker.predict(frames(t)).argmax(dim=0)
            tracker.commit(label)
            yield t, label

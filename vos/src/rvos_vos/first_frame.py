"""Semi-supervised propagation from the first frame (DAVIS / YouTube-VOS style): the ground-truth
labels of frame 0 (several objects, ids 1..N) propagated to every later frame with the project's
procedure (rvos_vos.procedure, one pass forward from key frame 0).

This is how a propagator's training is validated (rvos_train's PropagationTask): the J&F of these
predictions on a held-out split, by the DAVIS-2017 semi-supervised evaluation (rvos_eval). The
views default to one plain scale (the competition's multi-view test-time settings are a
``ViewConfig`` away). Only the first frame's ids are decoded (as aot-benchmark's evaluator passes
the object count, and as training masks absent ids), for AOT too: the competition's key-frame
procedure, which keeps every id live for AOT, is rvos_vos.propagate's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from rvos_vos.network import PropagationNet
from rvos_vos.procedure import MultiViewTracker, bidirectional
from rvos_vos.propagators import Propagator
from rvos_vos.views import ViewConfig, make_views

PLAIN_VIEW = ViewConfig(scales=(1.0,), flip=False)
"""One view at the frame's own size (rounded to the stride): what training validates with."""


@torch.no_grad()
def propagate_from_first(
    net: PropagationNet,
    propagator: Propagator,
    images: Sequence[np.ndarray],
    first: np.ndarray,
    views: ViewConfig = PLAIN_VIEW,
) -> np.ndarray:
    """Propagate ``first`` over the sequence.

    Args:
        net: the network (put in eval mode here). propagator: its memory policy.
        images: T frames, float32 [H, W, 3] RGB 0..255 (rvos_vos.views.read_frame).
        first: uint8 [H, W] labels of frame 0 (0 background, 1..N objects).

    Returns:
        uint8 [T, H, W]: frame 0 is ``first``, then the predicted labels.
    """
    net.eval()
    height, width = first.shape
    device = next(net.parameters()).device
    tracker = MultiViewTracker(
        net=net,
        policy=propagator.policy(net.config),
        live_ids=int(first.max()),
        views=views,
        size=(height, width),
    )
    key = torch.from_numpy(first.astype(np.int64)).to(device)
    out = np.empty((len(images), height, width), np.uint8)
    out[0] = first

    def frames(t: int) -> list[Tensor]:
        return [view.to(device) for view in make_views(images[t], views)]

    for t, label in bidirectional(tracker, frames, 0, key, len(images)):
        out[t] = label.cpu().numpy().astype(np.uint8)
    return out

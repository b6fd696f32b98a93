"""The project's key-frame procedure run by a library video tracker (``rvos_vos.trackers``).

For one video, each expression with a non-empty key mask is an object; the expressions that share
a key frame k are the objects of one inference session (per view). As with AOT
(``rvos_vos.procedure``): a forward pass from the smallest key frame up, where a session takes its
key masks at k (``add_mask_inputs`` at frame k, then the model on frame k) and predicts k+1 ... T-1;
then a backward pass from the largest key frame down, where each session predicts k-1 ... 0 with
the library's reverse propagation (``reverse=True``), its memory holding the key frame and the
forward predictions, as SAM 2's own "propagate, then propagate in reverse" does.

Frames are streamed: each call hands the model one frame (``frame=``); nothing holds the video.
Every session of a view shares one vision-feature cache of one frame, so a frame is encoded once
per view and pass for all expressions. The state is bounded without changing any result:
after each call the session keeps only the tracked outputs a later call can read, those within
``reach`` frames of the current frame (the memory reads the last ``num_maskmem - 1`` frames, the
object pointers the last ``max_object_pointers_in_encoder - 1``), and the ``reach`` frames after
the key frame, which the backward pass reads first; the conditioning (key) outputs stay.

Views: the frame, and with ``flip`` its mirror image tracked by sessions of their own; the two
probabilities (sigmoid of the logits at the frame size, the mirrored one mirrored back) are
averaged. Each view's memory holds its own predictions (the library encodes memory from its own
masks): unlike AOT, the averaged mask is not fed back. The model's input is a fixed square, so
there are no scales.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from transformers import PreTrainedModel

from rvos_vos.trackers import TrackerFamily, mask_input, mask_logits

# One frame as the model reads it, per view: float32 [3, side, side].
ViewPixels = list[Tensor]


@dataclass
class KeyGroup:
    """Expressions with one key frame: their key masks bool [N, H, W], and (once started) one
    inference session per view whose objects 0 ... N-1 are the expressions in order."""

    key: int
    masks: Tensor
    sessions: list[Any] = field(default_factory=list)


def schedule(keys: Sequence[int], count: int) -> Iterator[tuple[int, bool, list[int], list[int]]]:
    """The calls of the procedure for groups with key frames ``keys`` over ``count`` frames.

    Yields:
        (t, reverse, starting, stepping): at frame t, the groups whose key frame is t take their
        masks (forward pass only), then the groups in ``stepping`` predict t.
    """
    for t in range(min(keys), count):
        starting = [g for g, k in enumerate(keys) if k == t]
        yield t, False, starting, [g for g, k in enumerate(keys) if k < t]
    for t in range(max(keys) - 1, -1, -1):
        yield t, True, [], [g for g, k in enumerate(keys) if k > t]


def prune(session: Any, t: int, key: int, reach: int) -> None:
    """Drop the tracked outputs of ``session`` that no later call reads (module docstring)."""
    for outputs in session.output_dict_per_obj.values():
        stored = outputs["non_cond_frame_outputs"]
        for frame in [f for f in stored if abs(f - t) > reach and not key < f <= key + reach]:
            del stored[frame]


class VideoTracker:
    """The sessions of one video of ``size`` (H, W) for a library tracker.

    Args:
        model: the family's video model (eval mode); family: its TrackerFamily.
        flip: add the mirrored view. device: where the model runs; state_device: where the
            sessions keep their memory (the CPU offloads it).
    """

    def __init__(
        self,
        model: PreTrainedModel,
        family: TrackerFamily,
        size: tuple[int, int],
        *,
        flip: bool,
        device: torch.device,
        state_device: torch.device,
    ) -> None:
        config = model.config
        self.model, self.family, self.size = model, family, size
        self.side = _side(config.image_size)
        self.reach = max(config.num_maskmem, config.max_object_pointers_in_encoder)
        self.views = 2 if flip else 1
        self.device, self.state_device = device, state_device
        self.caches: list[Any] = [None] * self.views

    def pixels(self, image: Tensor) -> ViewPixels:
        """A frame float32 [H, W, 3] RGB 0..255 -> its views as the model reads them."""
        plain = self.family.pixels(image, self.side).to(self.device)
        return [plain, plain.flip(-1)][: self.views]

    def start(self, group: KeyGroup, t: int, pixels: ViewPixels) -> None:
        """Open the group's sessions with its key masks at frame ``t`` (its key frame)."""
        for view, frame in enumerate(pixels):
            session = self._session(view)
            masks = group.masks.flip(-1) if view else group.masks
            for obj, mask in enumerate(masks):
                session.add_mask_inputs(session.obj_id_to_idx(obj), t, mask_input(mask, self.side))
            session.obj_with_new_inputs = list(range(len(masks)))
            group.sessions.append(session)
            self._call(session, group.key, t, frame, reverse=False)

    def step(self, group: KeyGroup, t: int, pixels: ViewPixels, reverse: bool) -> Tensor:
        """The group's probabilities float32 [N, H, W] at frame ``t`` (mean over views)."""
        total = torch.zeros(())
        for view, (session, frame) in enumerate(zip(group.sessions, pixels, strict=True)):
            output = self._call(session, group.key, t, frame, reverse=reverse)
            logits = mask_logits(output.pred_masks, self.side, self.size)
            probs = torch.sigmoid(logits.flip(-1) if view else logits)
            total = total.to(probs.device) + probs
        return total / self.views

    def _session(self, view: int) -> Any:
        """A new session; the sessions of one view share its vision-feature cache."""
        session = self.family.session_class(
            video_height=self.size[0],
            video_width=self.size[1],
            inference_device=self.device,
            inference_state_device=self.state_device,
            video_storage_device=self.device,
            dtype=torch.float32,
            max_vision_features_cache_size=1,
        )
        if self.caches[view] is None:
            self.caches[view] = session.cache
        session.cache = self.caches[view]
        return session

    def _call(self, session: Any, key: int, t: int, frame: Tensor, reverse: bool) -> Any:
        """The model on streamed frame ``t``; then the frame and unreadable outputs are dropped."""
        output = self.model(inference_session=session, frame_idx=t, frame=frame, reverse=reverse)
        session.processed_frames.pop(t)
        prune(session, t, key, self.reach)
        return output


def _side(image_size: int | Sequence[int]) -> int:
    return image_size if isinstance(image_size, int) else int(image_size[0])


def track(
    tracker: VideoTracker,
    groups: Sequence[KeyGroup],
    frames: Callable[[int], ViewPixels],
    count: int,
) -> Iterator[tuple[int, int, Tensor]]:
    """The procedure over a ``count``-frame video (module docstring).

    Args:
        frames: t -> the views of frame t (called once per visited frame and pass).

    Yields:
        (group index, t, probabilities float32 [N, H, W]) for every frame but the group's key.
    """
    keys = [group.key for group in groups]
    for t, reverse, starting, stepping in schedule(keys, count):
        pixels = frames(t)
        for g in starting:
            tracker.start(groups[g], t, pixels)
        for g in stepping:
            yield g, t, tracker.step(groups[g], t, pixels, reverse)

"""The training forward of AOT / DeAOT over a batch of clips: reference frame, then every later
frame propagated from the memory, decoded and scored; the auxiliary (reference) and prediction
losses combined into the step's loss.

Papers: see ``rvos_vos.training.schedule``. Upstream: yoxu515/aot-benchmark @ 601c138 (training math
identical to 75e46fe) ``networks/engines/aot_engine.py`` (``AOTEngine.forward``,
``offline_encoder``, ``add_reference_frame``, ``match_propogate_one_frame``,
``update_short_term_memory``, ``decode_current_logits``, ``calculate_current_loss``,
``assign_identity``, ``restart_engine``), ``networks/engines/deaot_engine.py``
(``update_short_term_memory``: only the identity value is recomputed, which is what
``PropagationNet.memorize`` does for DeAOT), ``utils/math.py`` (``generate_permute_matrix``).
The competition copy (RobertLuo1/iccv2023_RVOS_Challenge @ c538b0d, ``soc_test/AOT``) has the same
engine; the fixtures were made with aot-benchmark.

Sequence (clip of T frames, ``TRAIN_ENABLE_PREV_FRAME`` False): all frames encoded at once; frame 0
attends to itself with its ground-truth identities (long- and short-term memory := frame 0) and
gives the auxiliary loss; frames 1..T-1 are propagated, decoded and scored; before frame t ≥ 2 the
memory takes frame t-1 (short-term always, long-term, prepended, when t-1 is ``long_term_gap``
frames after the last long-term write) with the ground-truth identities (teacher forcing) or, in
sequential training, the argmax of its own prediction; there all identity embeddings are detached.
Identities are permuted per sample by a random matrix (background fixed) and the decoder's logits
permuted back; channels above a sample's ``obj_num`` are set to -1e10.

Differences: the network is the stateless ``PropagationNet`` (no engine object); no
``enable_prev_frame`` / ``use_prev_prob`` paths; the loss is formed by the caller's ``StepSettings``
instead of engine state; dropout and drop-path are the network's own modules (rates set by
``rvos_vos.training.stochastic``); ``forced_predictions`` can replace the fed-back masks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from rvos_vos.network import Entries, PropagationNet, one_hot_ids
from rvos_vos.training.losses import FrameLosses, frame_losses
from rvos_vos.training.schedule import TrainSchedule

# Logit given to the channels of ids a sample does not have (upstream's fp32 value).
ABSENT_LOGIT = -1e10


@dataclass(frozen=True)
class StepSettings:
    """What one training step needs from the schedule.

    Attributes:
        aux_weight: weight of the reference frame's loss (0: computed without gradient).
        topk_fraction: pixel fraction of the bootstrapped cross-entropy.
        sequential: memory from the model's own predictions, identity embeddings detached.
        long_term_gap: frames between long-term memory writes.
    """

    aux_weight: float
    topk_fraction: float
    sequential: bool
    long_term_gap: int

    @classmethod
    def at(cls, schedule: TrainSchedule, step: int) -> StepSettings:
        return cls(
            aux_weight=schedule.aux_weight(step),
            topk_fraction=schedule.topk_fraction(step),
            sequential=schedule.sequential(step),
            long_term_gap=schedule.long_term_gap,
        )


@dataclass(frozen=True)
class FrameOutput:
    """One frame of the step: ``logits`` [B, num_ids, h, w] (un-shuffled, absent ids at -1e10),
    ``pred_mask`` int64 [B, H, W] (argmax after upsampling), ``losses`` (each [B])."""

    logits: Tensor
    pred_mask: Tensor
    losses: FrameLosses


@dataclass(frozen=True)
class MemoryWrite:
    """One memory write: after which frame, from the prediction or the ground truth, the long-term
    memory length in frames before / after, and the frame of the last long-term write."""

    after_frame: int
    from_prediction: bool
    long_term_before: int
    long_term_after: int
    last_long_term: int


@dataclass(frozen=True)
class StepOutput:
    """``frames`` (T entries, frame 0 the reference); ``aux_loss`` (mean over samples of frame 0),
    ``pred_loss`` (mean over frames 1..T-1 and samples), ``loss = aux_weight·aux + pred``."""

    frames: list[FrameOutput]
    memory_log: list[MemoryWrite]
    aux_loss: Tensor
    pred_loss: Tensor
    loss: Tensor


def random_id_shuffle(batch: int, num_ids: int, generator: torch.Generator | None = None) -> Tensor:
    """[B, num_ids, num_ids] permutation matrices keeping id 0 (background) in place.

    Row o is the one-hot of the channel id o is moved to (``shuffle_ids``).
    """
    eye = torch.eye(num_ids)
    matrices = []
    for _ in range(batch):
        perm = torch.randperm(num_ids - 1, generator=generator) + 1
        matrices.append(torch.cat([eye[:1], eye[perm]]))
    return torch.stack(matrices)


def shuffle_ids(one_hot: Tensor, shuffle: Tensor) -> Tensor:
    """one_hot [B, K, H, W], shuffle [B, K, K] -> [B, K, H, W] with channel o moved as row o says."""
    return torch.einsum("bohw,bot->bthw", one_hot, shuffle)


def unshuffle_logits(logits: Tensor, shuffle: Tensor) -> Tensor:
    """Inverse of ``shuffle_ids`` on decoder logits [B, K, h, w]."""
    return torch.einsum("bohw,bto->bthw", logits, shuffle)


def mask_absent_ids(logits: Tensor, obj_nums: Sequence[int]) -> Tensor:
    """Channels above each sample's ``obj_num`` set to -1e10 (out of place). [B, K, h, w]."""
    channel = torch.arange(logits.shape[1], device=logits.device)
    limit = torch.tensor(obj_nums, device=logits.device)[:, None]
    absent = (channel[None] > limit)[:, :, None, None]
    return logits.masked_fill(absent, ABSENT_LOGIT)


class _Memory:
    """Long- and short-term memory of one step and the log of its writes."""

    def __init__(self, reference: Entries, gap: int) -> None:
        self.long, self.short, self.gap = reference, reference, gap
        self.long_frames, self.last_long = 1, 0
        self.log = [MemoryWrite(0, False, 0, 1, 0)]

    def write(self, frame: int, entries: Entries, from_prediction: bool) -> None:
        before = self.long_frames
        self.short = entries
        if frame - self.last_long >= self.gap:
            self.long = [
                tuple(torch.cat([new, old]) for new, old in zip(n, o, strict=True))
                for n, o in zip(entries, self.long, strict=True)
            ]
            self.long_frames, self.last_long = before + 1, frame
        self.log.append(
            MemoryWrite(frame, from_prediction, before, self.long_frames, self.last_long)
        )


class TrainingForward:
    """The training forward of one step on a ``PropagationNet`` (AOT or DeAOT).

    Args:
        net: the network, in ``train()`` mode.
        obj_nums: per sample, the largest id of its reference label.
        shuffle: [B, K, K] identity permutation (``random_id_shuffle``).
        settings: the step's schedule values.
    """

    def __init__(
        self,
        net: PropagationNet,
        obj_nums: Sequence[int],
        shuffle: Tensor,
        settings: StepSettings,
    ) -> None:
        self.net, self.obj_nums, self.shuffle, self.settings = net, obj_nums, shuffle, settings

    def identities(self, labels: Tensor) -> Tensor:
        """labels [B, H, W] (ids, 255 ignored) -> shuffled id embedding [h·w, B, d]."""
        one_hot = one_hot_ids(labels[:, None], self.net.config.num_ids).to(self.shuffle.dtype)
        emb = self.net.embed_ids(shuffle_ids(one_hot, self.shuffle))
        return emb.detach() if self.settings.sequential else emb

    def score(self, embs: list[Tensor], features: Sequence[Tensor], labels: Tensor) -> FrameOutput:
        """Decode a propagated frame and compute its losses against labels [B, H, W]."""
        logits = unshuffle_logits(self.net.decode(embs, features), self.shuffle)
        logits = mask_absent_ids(logits, self.obj_nums)
        losses = frame_losses(logits, labels, self.obj_nums, self.settings.topk_fraction)
        size = tuple(labels.shape[-2:])
        upsampled = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return FrameOutput(logits, upsampled.argmax(dim=1), losses)

    def __call__(
        self, frames: Tensor, labels: Tensor, forced_predictions: Tensor | None = None
    ) -> StepOutput:
        """Run the step.

        Args:
            frames: [T, B, 3, H, W] normalised; labels: [T, B, H, W] ids or 255.
            forced_predictions: optional [T, B, H, W] masks written to memory in sequential
                training instead of the model's own argmax (to follow a reference run whose
                prediction differs at a near-tie pixel); ignored when teacher forcing.

        Returns:
            StepOutput.
        """
        t_count, batch = frames.shape[:2]
        encoded = self.net.encode(frames.flatten(0, 1))
        features = [[m[t * batch : (t + 1) * batch] for m in encoded] for t in range(t_count)]
        pos = self.net.position_embedding(features[0][-1])
        embs, entries = self.net.propagate(features[0], None, None, self.identities(labels[0]), pos)
        grad = contextlib.nullcontext() if self.settings.aux_weight != 0 else torch.no_grad()
        with grad:
            outputs = [self.score(embs, features[0], labels[0])]
        memory = _Memory(entries, self.settings.long_term_gap)
        for t in range(1, t_count):
            if t >= 2:
                pred = (
                    outputs[-1].pred_mask
                    if forced_predictions is None
                    else forced_predictions[t - 1]
                )
                self._memorize(memory, t - 1, entries, labels[t - 1], pred)
            embs, entries = self.net.propagate(features[t], memory.long, memory.short, None, pos)
            outputs.append(self.score(embs, features[t], labels[t]))
        return self._combine(outputs, memory.log)

    def _memorize(
        self, memory: _Memory, frame: int, raw: Entries, labels: Tensor, pred_mask: Tensor
    ) -> None:
        source = pred_mask if self.settings.sequential else labels
        memory.write(
            frame, self.net.memorize(raw, self.identities(source)), self.settings.sequential
        )

    def _combine(self, outputs: list[FrameOutput], log: list[MemoryWrite]) -> StepOutput:
        aux = outputs[0].losses.total.mean()
        pred = torch.cat([o.losses.total for o in outputs[1:]]).mean()
        return StepOutput(outputs, log, aux, pred, self.settings.aux_weight * aux + pred)

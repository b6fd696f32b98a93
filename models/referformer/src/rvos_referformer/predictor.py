"""The ReferFormer predictor: frames of one video + its expressions -> per-expression results.

Reproduces the competition inference (``ReferFormer/inference_ytvos*.py``): PIL short-side resize,
ImageNet normalisation, the whole video in one forward, one query for the whole video, bilinear
resize of its mask logits to the original size, float32 sigmoid, per-frame scores (class_info).

Beyond upstream: the backbone part of the forward runs once per video and is reused for every
expression (``reuse_backbone``, on by default; the results equal one full forward per
expression); ``chunk_frames=N`` runs the video as consecutive clips of N frames to bound memory.
Chunking is an approximation: upstream attends over the whole video (Video-Swin's 8-frame temporal
windows and the pixel decoder's clip-wide self-attention see every frame), so chunked results differ
from upstream; the query is still chosen over the whole video.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor

from rvos_core.errors import ConfigError, InputError
from rvos_nn.options import option
from rvos_nn.postprocess import postprocess
from rvos_nn.predictor import ExpressionPrediction, PredictorContext
from rvos_nn.preprocess import preprocess_frames
from rvos_nn.text import ROBERTA_TOKENIZER, Tokenizer, load_tokenizer
from rvos_referformer.model import ReferFormer, VideoFeatures


@dataclass(frozen=True)
class ReferFormerOptions:
    """The model's ``--option key=value`` settings (parsed by rvos_nn.options)."""

    reuse_backbone: bool = option(
        True,
        "true (default): one backbone pass per video for all its expressions; false: one full "
        "forward per expression (same results, slower)",
    )
    chunk_frames: int = option(
        0,
        "run the video as clips of at most N frames (0 = whole video, as upstream; N > 0 bounds "
        "memory but changes results)",
        minimum=0,
    )


class ReferFormerPredictor:
    """See the module docstring. ``model`` must already be on ``device`` and in eval mode."""

    def __init__(
        self,
        model: ReferFormer,
        tokenizer: Tokenizer,
        device: torch.device,
        *,
        reuse_backbone: bool = True,
        chunk_frames: int = 0,
    ):
        if chunk_frames < 0:
            raise ConfigError(f"chunk_frames must be >= 0, got {chunk_frames}")
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.reuse_backbone = reuse_backbone
        self.chunk_frames = chunk_frames

    def predict(
        self, frames: Sequence[Image.Image], texts: Sequence[str]
    ) -> Iterator[ExpressionPrediction]:
        """Yield one prediction per text (probs float32 [T, H0, W0], scores [T])."""
        if not frames:
            raise InputError(None, "a video without frames cannot be predicted")
        original = (frames[0].height, frames[0].width)
        video = preprocess_frames(frames, self.model.config.resize_short).to(self.device)
        size = torch.tensor(video.shape[-2:], dtype=torch.int64, device=self.device)
        clips = self._clips(video)
        cache = [self.model.encode_video(clip) for clip in clips] if self.reuse_backbone else None
        for text in texts:
            tokens = self.tokenizer([text]).to(self.device)
            words = self.model.encode_text(tokens.input_ids, tokens.attention_mask)
            logits, masks = [], []
            for i, clip in enumerate(clips):
                features: VideoFeatures = (
                    cache[i] if cache is not None else self.model.encode_video(clip)
                )
                out = self.model.decode(features, words, size)
                logits.append(out.pred_logits[0])
                masks.append(out.pred_masks[0])
            result = postprocess(torch.cat(logits), torch.cat(masks), original)
            yield ExpressionPrediction(
                probs=result.probs.cpu().numpy(), scores=result.class_info.double().cpu().numpy()
            )

    def _clips(self, video: Tensor) -> list[Tensor]:
        if self.chunk_frames == 0:
            return [video]
        return list(video.split(self.chunk_frames))


def create_predictor(model: ReferFormer, context: PredictorContext) -> ReferFormerPredictor:
    """The driver's factory (ModelEntry.create_predictor): tokenizer from PRETRAINED/roberta-base."""
    tokenizer = load_tokenizer(ROBERTA_TOKENIZER, context.pretrained, model.config.text.max_tokens)
    options: ReferFormerOptions = context.options
    return ReferFormerPredictor(
        model,
        tokenizer,
        context.device,
        reuse_backbone=options.reuse_backbone,
        chunk_frames=options.chunk_frames,
    )

"""The MUTR predictor: frames of one video + its expressions -> per-expression results.

Reproduces the competition inference (``MUTR/inference_ytvos.py``, ``MUTR/infer_ytvos_ensemble.py``):
PIL short-side resize, ImageNet normalisation, the whole video in one forward, one query for the
whole video, bilinear resize of its mask logits to the original size, float32 sigmoid, per-frame
scores (class_info; constant over time for MUTR, so the key frame is frame 0).

The input size is a per-run option: ``short_side`` (upstream: 432 in ``inference_ytvos.py``, which
wrote the Annotations, 360 in ``infer_ytvos_ensemble.py``, which wrote ``mutr.pth``; the default
is the config's ``resize_short``). Beyond upstream: the backbone part of the forward runs once per
video and is reused for every expression (``reuse_backbone``, on by default; the results equal one
full forward per expression).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from rvos_core.errors import InputError
from rvos_mutr.model import MUTR
from rvos_nn.options import option
from rvos_nn.postprocess import postprocess
from rvos_nn.predictor import ExpressionPrediction, PredictorContext
from rvos_nn.preprocess import preprocess_frames
from rvos_nn.text import ROBERTA_TOKENIZER, Tokenizer, load_tokenizer

MIN_SHORT_SIDE = 32


@dataclass(frozen=True)
class MUTROptions:
    """The model's ``--option key=value`` settings (parsed by rvos_nn.options)."""

    short_side: int | None = option(
        None,
        "short side of the frames fed to the model (default: the model's, 360 = upstream's "
        "mutr.pth run, infer_ytvos_ensemble.py; 432 = upstream's Annotations run, inference_ytvos.py)",
        minimum=MIN_SHORT_SIDE,
    )
    reuse_backbone: bool = option(
        True,
        "true (default): one backbone pass per video for all its expressions; false: one full "
        "forward per expression (same results, slower)",
    )


class MUTRPredictor:
    """See the module docstring. ``model`` must already be on ``device`` and in eval mode."""

    def __init__(
        self,
        model: MUTR,
        tokenizer: Tokenizer,
        device: torch.device,
        *,
        short_side: int | None = None,
        reuse_backbone: bool = True,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.short_side = model.config.resize_short if short_side is None else short_side
        self.reuse_backbone = reuse_backbone

    def predict(
        self, frames: Sequence[Image.Image], texts: Sequence[str]
    ) -> Iterator[ExpressionPrediction]:
        """Yield one prediction per text (probs float32 [T, H0, W0], scores [T])."""
        if not frames:
            raise InputError(None, "a video without frames cannot be predicted")
        tokenized = [self.tokenizer([text]) for text in texts]  # a bad text fails before any work
        original = (frames[0].height, frames[0].width)
        video = preprocess_frames(frames, self.short_side).to(self.device)
        size = torch.tensor(video.shape[-2:], dtype=torch.int64, device=self.device)
        features = self.model.encode_video(video) if self.reuse_backbone else None
        for tokens in tokenized:
            tokens = tokens.to(self.device)
            words = self.model.encode_text(tokens.input_ids, tokens.attention_mask)
            out = self.model.decode(
                features if features is not None else self.model.encode_video(video), words, size
            )
            result = postprocess(out.pred_logits[0], out.pred_masks[0], original)
            yield ExpressionPrediction(
                probs=result.probs.cpu().numpy(), scores=result.class_info.double().cpu().numpy()
            )


def create_predictor(model: MUTR, context: PredictorContext) -> MUTRPredictor:
    """The driver's factory (ModelEntry.create_predictor): tokenizer from PRETRAINED/roberta-base."""
    tokenizer = load_tokenizer(ROBERTA_TOKENIZER, context.pretrained, model.config.text.max_tokens)
    options: MUTROptions = context.options
    return MUTRPredictor(
        model,
        tokenizer,
        context.device,
        short_side=options.short_side,
        reuse_backbone=options.reuse_backbone,
    )

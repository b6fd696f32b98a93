"""The SOC predictor: frames of one video + its expressions -> per-expression results.

Reproduces the competition inference (``soc_test/infer_refytb.py`` / ``infer_refytb_ensemble.py``):
PIL frames resized by DETR's ``RandomResize([360], max_size=640)`` (integer truncation of the long
side), ImageNet normalisation, the whole video in one forward, one query chosen for the whole video
(sigmoid, mean over time, argmax), its mask logits resized bilinearly to the original size,
float32 sigmoid (foreground > 0.5), per-frame scores of that query (``class_info``).

Beyond upstream: the backbone part of the forward runs once per video and is reused for every
expression (``reuse_backbone``, on by default; the results equal one full forward per expression).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from rvos_core.errors import InputError
from rvos_nn.options import option
from rvos_nn.postprocess import postprocess
from rvos_nn.predictor import ExpressionPrediction, PredictorContext
from rvos_nn.preprocess import preprocess_frames
from rvos_nn.text import ROBERTA_TOKENIZER, Tokenizer, load_tokenizer
from rvos_soc.model import SOC


@dataclass(frozen=True)
class SOCOptions:
    """The model's ``--option key=value`` settings (parsed by rvos_nn.options)."""

    reuse_backbone: bool = option(
        True,
        "true (default): one backbone pass per video for all its expressions; false: one full "
        "forward per expression (same results, slower)",
    )


class SOCPredictor:
    """See the module docstring. ``model`` must already be on ``device`` and in eval mode."""

    def __init__(
        self, model: SOC, tokenizer: Tokenizer, device: torch.device, *, reuse_backbone: bool = True
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.reuse_backbone = reuse_backbone

    def predict(
        self, frames: Sequence[Image.Image], texts: Sequence[str]
    ) -> Iterator[ExpressionPrediction]:
        """Yield one prediction per text (probs float32 [T, H0, W0], scores [T])."""
        if not frames:
            raise InputError(None, "a video without frames cannot be predicted")
        config = self.model.config
        original = (frames[0].height, frames[0].width)
        video = preprocess_frames(frames, config.eval_short_size, config.eval_max_size)
        video = video.to(self.device)
        size = torch.tensor(video.shape[-2:], dtype=torch.int64, device=self.device)
        features = self.model.encode_video(video) if self.reuse_backbone else None
        for text in texts:
            tokens = self.tokenizer([text]).to(self.device)
            words = self.model.encode_text(tokens.input_ids, tokens.attention_mask)
            visual = features if features is not None else self.model.encode_video(video)
            out = self.model.decode(visual, words, size)
            result = postprocess(out.pred_is_referred[:, 0], out.pred_masks[:, 0], original)
            yield ExpressionPrediction(
                probs=result.probs.cpu().numpy(), scores=result.class_info.double().cpu().numpy()
            )


def create_predictor(model: SOC, context: PredictorContext) -> SOCPredictor:
    """The driver's factory (ModelEntry.create_predictor): tokenizer from PRETRAINED/roberta-base."""
    tokenizer = load_tokenizer(ROBERTA_TOKENIZER, context.pretrained, model.config.text.max_tokens)
    options: SOCOptions = context.options
    return SOCPredictor(model, tokenizer, context.device, reuse_backbone=options.reuse_backbone)

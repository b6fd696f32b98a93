"""The UNINEXT predictor: frames of one video + its expressions -> per-expression results.

Reproduces the competition run (``UNINEXT_VID`` with ``dataset_name="rvos-refytb-val"``): the
expression is cleaned (``clean_string``) and tokenized by the bert-base-uncased tokenizer (max 256,
padded to the maximum, truncated); every frame is resized (short side 480, long side <= 1333, PIL
bilinear), normalised, padded to 32 and predicted on its own; the top-1 query of each frame by
sqrt(sigmoid(class) * sigmoid(IoU)) gives its mask (probabilities at the original size) and score.
Probabilities, not logits, are what upstream stored: ``value_domain`` is "probability".

Beyond upstream: the text-independent part (backbone, input projections, position embeddings) is
computed once per video and reused for every expression (``reuse_backbone``); only the top-1
query's mask is computed per frame (upstream computes all of them and keeps one; same values);
the output-neutral reid head is not run; ``frame_batch=N`` runs N frames per pass (batched
convolutions round differently, ~1e-6; the default 1 is upstream's).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from rvos_core.errors import ConfigError, InputError
from rvos_nn.options import option
from rvos_nn.predictor import ExpressionPrediction, PredictorContext
from rvos_nn.text import UNINEXT_BERT_TOKENIZER, Tokenizer, Tokens, load_tokenizer
from rvos_uninext.model import Uninext, VisualFeatures
from rvos_uninext.postprocess import mask_probabilities, query_scores, top_query
from rvos_uninext.preprocess import FrameBatch, clean_expression, prepare_frames


@dataclass(frozen=True)
class UninextOptions:
    """The model's ``--option key=value`` settings (parsed by rvos_nn.options)."""

    frame_batch: int = option(
        1,
        "frames per pass (default 1, as upstream; larger is faster on GPU and changes float "
        "rounding only)",
        minimum=1,
    )
    reuse_backbone: bool = option(
        True,
        "true (default): one backbone pass per video for all its expressions; false: one per "
        "expression (same results, slower, less memory)",
    )


@dataclass(frozen=True)
class PreparedVideo:
    """A video ready for any number of expressions: its frame chunks, their cached features
    (None when not reused) and the original (H, W)."""

    chunks: list[list[Image.Image]]
    features: list[VisualFeatures] | None
    original_size: tuple[int, int]


class UninextPredictor:
    """See the module docstring. ``model`` must already be on ``device`` and in eval mode.

    Without a tokenizer only ``prepare`` + ``predict_tokens`` work (parity runs on fixed ids).
    """

    def __init__(
        self,
        model: Uninext,
        tokenizer: Tokenizer | None,
        device: torch.device,
        *,
        frame_batch: int = 1,
        reuse_backbone: bool = True,
    ):
        if frame_batch < 1:
            raise ConfigError(f"frame_batch must be >= 1, got {frame_batch}")
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.frame_batch = frame_batch
        self.reuse_backbone = reuse_backbone

    def predict(
        self, frames: Sequence[Image.Image], texts: Sequence[str]
    ) -> Iterator[ExpressionPrediction]:
        """Yield one prediction per text (probs float32 [T, H0, W0], scores float64 [T])."""
        video = self.prepare(frames)
        for text in texts:
            yield self.predict_tokens(video, self.tokenize(text))

    def tokenize(self, text: str) -> Tokens:
        """Upstream's cleaning then the BERT tokenizer call: ids / mask [1, max_query_len]."""
        if self.tokenizer is None:
            raise ConfigError("this UNINEXT predictor was created without a tokenizer")
        return self.tokenizer([clean_expression(text)]).to(self.device)

    def prepare(self, frames: Sequence[Image.Image]) -> PreparedVideo:
        """Chunk the frames and, with ``reuse_backbone``, encode them once."""
        if not frames:
            raise InputError(None, "a video without frames cannot be predicted")
        size = frames[0].size
        for index, frame in enumerate(frames):
            if frame.size != size:
                raise InputError(
                    None,
                    f"frame {index} is {frame.width}x{frame.height}, frame 0 is {size[0]}x{size[1]}",
                )
        step = self.frame_batch
        chunks = [list(frames[i : i + step]) for i in range(0, len(frames), step)]
        features = [self._encode(chunk) for chunk in chunks] if self.reuse_backbone else None
        return PreparedVideo(chunks, features, (size[1], size[0]))

    @torch.inference_mode()
    def _encode(self, chunk: Sequence[Image.Image]) -> VisualFeatures:
        config = self.model.config
        batch: FrameBatch = prepare_frames(
            chunk, config.min_size_test, config.max_size_test, self.device
        )
        return self.model.encode_frames(batch)

    @torch.inference_mode()
    def predict_tokens(self, video: PreparedVideo, tokens: Tokens) -> ExpressionPrediction:
        """One expression, already tokenized ([1, L]), on a prepared video."""
        text = self.model.encode_text(tokens.input_ids, tokens.attention_mask)
        probs, scores = [], []
        for index, chunk in enumerate(video.chunks):
            visual = video.features[index] if video.features is not None else self._encode(chunk)
            out = self.model.decode(visual, text, tokens.attention_mask)
            best, query = top_query(query_scores(out.pred_logits, out.pred_boxious))
            logits = self.model.predict_masks(out, query[:, None])[:, 0]
            probs.append(mask_probabilities(logits, visual.image_sizes, video.original_size))
            scores.append(best)
        return ExpressionPrediction(
            probs=torch.cat(probs).float().cpu().numpy(),
            scores=torch.cat(scores).double().cpu().numpy(),
        )


def create_predictor(model: Uninext, context: PredictorContext) -> UninextPredictor:
    """The driver's factory (ModelEntry.create_predictor): tokenizer from PRETRAINED/bert-base-uncased."""
    spec = dataclasses.replace(UNINEXT_BERT_TOKENIZER, max_length=model.config.max_query_len)
    tokenizer = load_tokenizer(spec, context.pretrained, model.config.text.max_tokens)
    options: UninextOptions = context.options
    return UninextPredictor(
        model,
        tokenizer,
        context.device,
        frame_batch=options.frame_batch,
        reuse_backbone=options.reuse_backbone,
    )

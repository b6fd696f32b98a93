"""SAM 3 as a referring model: the expression is SAM 3's text prompt, the answer its best track.

Per video, one ``Sam3VideoInferenceSession`` holds the frames (on the CPU, as the library's own
``init_video_session(video=...)``) and every expression as a prompt (the library's multi-prompt
session; two expressions with the same text share one); the model runs on each frame in order
(``model(inference_session=..., frame_idx=t)``, what ``propagate_in_video_iterator`` calls): SAM 3
detects the prompts' objects on each frame and tracks them. Not streamed on purpose: the
library's streaming mode (``frame=``) turns off SAM 3's hot-start removal of duplicate and
unmatched tracks. Per expression, the answer is the track of that prompt with
the highest detection score (``obj_id_to_score``), leaving out the tracks SAM 3 itself removed
(hot-start duplicates and the unmatched); its probabilities are the sigmoid of its mask logits
(bilinear to the frame size, as the library's ``postprocess_outputs``), 0 on frames where the
track is absent or suppressed, and its per-frame score is the tracker's score of that track on the
frame (0 where absent), so the key frame is where SAM 3 was most sure of it. No track: all 0.

The tokenizer (SAM 3's CLIP tokenizer) is read from the weights folder, as the library's
processor does (prompts padded to 32 tokens).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from transformers import (
    AutoTokenizer,
    PreTrainedTokenizerBase,
    Sam3VideoInferenceSession,
    Sam3VideoModel,
)

from rvos_core.errors import ConfigError, InputError
from rvos_nn.hf_video import HALF, frame_pixels
from rvos_nn.options import NoOptions
from rvos_nn.predictor import ExpressionPrediction, PredictorContext

PROMPT_TOKENS = 32  # the library processor's padding length
Sam3Options = NoOptions  # SAM 3 takes no --option


@dataclass
class Tracks:
    """What one pass over a video gives: per object, its mask logits [h, w] (CPU, float16) and
    tracker score on each frame it is shown."""

    masks: dict[int, dict[int, Tensor]] = field(default_factory=dict)
    scores: dict[int, dict[int, float]] = field(default_factory=dict)

    def add(
        self, t: int, masks: dict[int, Tensor], scores: dict[int, float], hidden: set[int]
    ) -> None:
        for obj, mask in masks.items():
            if obj not in hidden:
                self.masks.setdefault(obj, {})[t] = mask[0].to("cpu", torch.float16)
                self.scores.setdefault(obj, {})[t] = float(scores.get(obj, 0.0))


class Sam3Predictor:
    """Frames of one video + its expressions -> one prediction per expression (module docstring).

    Args:
        model: Sam3VideoModel in eval mode on ``device``; tokenizer: its text tokenizer.
    """

    def __init__(
        self, model: Sam3VideoModel, tokenizer: PreTrainedTokenizerBase, device: torch.device
    ) -> None:
        self.model, self.tokenizer, self.device = model, tokenizer, device
        self.side = model.config.image_size

    def predict(
        self, frames: Sequence[Image.Image], texts: Sequence[str]
    ) -> Iterator[ExpressionPrediction]:
        size = (frames[0].height, frames[0].width)
        session = self.session(frames, texts)
        tracks = Tracks()
        for t in range(len(frames)):
            output = self.model(inference_session=session, frame_idx=t)
            hidden = set(output.suppressed_obj_ids or ()) | session.hotstart_removed_obj_ids
            tracks.add(t, output.obj_id_to_mask, output.obj_id_to_tracker_score, hidden)
        removed = set(session.removed_obj_ids) | session.hotstart_removed_obj_ids
        for text in texts:
            prompt = session.add_prompt(text)  # the id it already has
            objects = [
                obj
                for obj, owner in session.obj_id_to_prompt_id.items()
                if owner == prompt and obj in tracks.masks and obj not in removed
            ]
            best = max(objects, key=lambda obj: session.obj_id_to_score.get(obj, 0.0), default=None)
            yield answer(tracks, best, len(frames), size)

    def session(
        self, frames: Sequence[Image.Image], texts: Sequence[str]
    ) -> Sam3VideoInferenceSession:
        """A session holding the video's frames (on the CPU) and every distinct text as a prompt."""
        session = Sam3VideoInferenceSession(
            video=torch.stack([self.pixels(frame) for frame in frames]),
            video_height=frames[0].height,
            video_width=frames[0].width,
            inference_device=self.device,
            inference_state_device=self.device,
            video_storage_device="cpu",
            dtype=torch.float32,
        )
        for text in texts:
            prompt = session.add_prompt(text)
            if prompt not in session.prompt_input_ids:
                encoded = self.tokenizer(
                    text, return_tensors="pt", padding="max_length", max_length=PROMPT_TOKENS
                ).to(self.device)
                session.prompt_input_ids[prompt] = encoded.input_ids
                session.prompt_attention_masks[prompt] = encoded.attention_mask
        return session

    def pixels(self, frame: Image.Image) -> Tensor:
        """A PIL RGB frame -> the model's input float32 [3, side, side]."""
        image = torch.from_numpy(np.asarray(frame, dtype=np.float32))
        return frame_pixels(image, self.side, HALF, HALF)


def answer(
    tracks: Tracks, obj: int | None, count: int, size: tuple[int, int]
) -> ExpressionPrediction:
    """The prediction of track ``obj`` (None: nothing found) over ``count`` frames of ``size``."""
    probs = np.zeros((count, *size), np.float32)
    scores = np.zeros(count, np.float64)
    if obj is not None:
        for t, mask in tracks.masks[obj].items():
            logits = F.interpolate(
                mask.float()[None, None], size=size, mode="bilinear", align_corners=False
            )
            probs[t] = torch.sigmoid(logits[0, 0]).numpy()
            scores[t] = tracks.scores[obj][t]
    return ExpressionPrediction(probs=probs, scores=scores)


def load_tokenizer(model: Sam3VideoModel) -> PreTrainedTokenizerBase:
    """SAM 3's tokenizer from the folder the model was loaded from."""
    folder = model.name_or_path
    if not folder:
        raise ConfigError(
            "sam3 reads its tokenizer from its weights folder: pass --checkpoint FOLDER"
        )
    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(
            Path(folder),
            f"no readable SAM 3 tokenizer (tokenizer.json or vocab.json + merges.txt): {exc}",
        ) from None


def create_predictor(model: Sam3VideoModel, context: PredictorContext) -> Sam3Predictor:
    """The driver's factory (``ModelEntry.predictor``); SAM 3 has no options."""
    assert isinstance(context.options, Sam3Options)
    return Sam3Predictor(model, load_tokenizer(model), context.device)

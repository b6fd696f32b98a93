"""A test double of a model package, registered through a temporary entry point by the tests.

``DoubleNet`` has a visual part, a text part and a head shared by two parents (so checkpoints
store it twice, like ReferFormer's bbox_embed). Its predictor tokenizes with the upstream RoBERTa
call from PRETRAINED, computes the visual part once per video and records every call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from rvos_nn.checkpoint import CheckpointRules, KeyRule
from rvos_nn.options import option
from rvos_nn.parity import ParityCheck
from rvos_nn.predictor import ExpressionPrediction, ModelEntry, PredictorContext
from rvos_nn.text import ROBERTA_TOKENIZER, load_tokenizer

WIDTHS = {"tiny": 4, "full": 8}
VOCAB = 320
MAX_TOKENS = 24
CALLS: list[tuple[int, tuple[str, ...]]] = []


class DoubleNet(nn.Module):
    def __init__(self, *, width: int) -> None:
        super().__init__()
        self.visual = nn.Conv2d(3, width, 1)
        self.text = nn.Embedding(VOCAB, width)
        self.head = nn.ModuleList([nn.Linear(width, 1)])
        self.decoder = nn.Module()
        self.decoder.head = self.head


def build(variant: str) -> DoubleNet:
    return DoubleNet(width=WIDTHS[variant])


def net(width: int) -> DoubleNet:
    return DoubleNet(width=width)


@dataclasses.dataclass(frozen=True)
class DoubleOptions:
    scale: float = option(1.0, "multiply the logits by this number")


class DoublePredictor:
    def __init__(self, model: DoubleNet, context: PredictorContext) -> None:
        self.model, self.context = model, context
        self.scale = context.options.scale
        self.tokenizer = load_tokenizer(ROBERTA_TOKENIZER, context.pretrained, MAX_TOKENS)

    def predict(
        self, frames: Sequence[Image.Image], texts: Sequence[str]
    ) -> Iterator[ExpressionPrediction]:
        CALLS.append((len(frames), tuple(texts)))
        pixels = torch.from_numpy(np.stack([np.asarray(f) for f in frames])).float() / 255
        pixels = pixels.permute(0, 3, 1, 2).to(self.context.device)
        features = self.model.visual(pixels)  # [T, C, H, W]
        features = features - features.mean(dim=(2, 3), keepdim=True)
        for text in texts:
            ids = self.tokenizer([text]).input_ids.to(self.context.device)
            query = self.model.text(ids).mean(dim=1)  # [1, C]
            weights = self.model.head[0].weight[0] * query[0]
            logits = torch.einsum("tchw,c->thw", features, weights) * self.scale
            probs = logits.float().sigmoid()
            yield ExpressionPrediction(probs.cpu().numpy(), probs.mean(dim=(1, 2)).cpu().numpy())


ENTRY = ModelEntry(
    name="double",
    variants=WIDTHS,
    module=net,
    predictor=DoublePredictor,
    value_domain="logit",
    checkpoint_rules=CheckpointRules(
        renames=((r"old_text\.", "text."),),
        ignore=(KeyRule("unused-template", r"template\..*", "stored upstream, never used"),),
    ),
    checkpoint_file="double.pth",
    default_variant="tiny",
    options=DoubleOptions,
)
WRONG_NAME = dataclasses.replace(ENTRY, name="other")
GROUPS = {
    "rvos.models": {"double": "nn_double:ENTRY", "misnamed": "nn_double:WRONG_NAME"},
    "rvos.parity": {"toy.close": "nn_double:parity_close", "toy.far": "nn_double:parity_far"},
}


def parity_close(fixture: Path, check: ParityCheck) -> None:
    """Compares a stored value with itself plus 1e-7 (within the default tolerance)."""
    value = torch.load(fixture / "value.pt", weights_only=True)
    check.close("value", value + 1e-7, value)
    check.equal("shape", list(value.shape), list(value.shape))


def parity_far(fixture: Path, check: ParityCheck) -> None:
    """Compares a stored value with itself plus 1 (outside the default tolerance)."""
    value = torch.load(fixture / "value.pt", weights_only=True)
    check.close("value", value + 1, value)


def save_checkpoint(path: Path, variant: str = "tiny", seed: int = 0) -> dict[str, torch.Tensor]:
    """A checkpoint of a randomly initialised DoubleNet in upstream layout; returns its state dict."""
    torch.manual_seed(seed)
    state = build(variant).state_dict()
    torch.save({"model": state, "epoch": 3}, path)
    return state


def write_entry_points(folder: Path, groups: dict[str, dict[str, str]]) -> Path:
    """A dist-info folder under ``folder`` declaring ``groups`` (group -> name -> 'module:attr')."""
    info = folder / "rvos_test_double-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rvos-test-double\nVersion: 0\n")
    lines = []
    for group, entries in groups.items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return folder

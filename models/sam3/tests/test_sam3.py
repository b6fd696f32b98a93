"""SAM 3 as a model node: the calls of the predictor and its choice of track (a fake model), the
tiny random model through the inference driver (masks, scores, key frames, provenance), and a
missing weights folder."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from rvos_sam3 import ENTRY, Sam3Predictor, build
from rvos_sam3.entry import tiny
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from rvos_core.data import Dataset, open_dataset
from rvos_core.runfolder import Run
from rvos_core.synthetic import VideoSpec, write_refytvos
from rvos_nn.infer import main

SPECS = [VideoSpec("a", 3, 4, (24, 32)), VideoSpec("b", 2, 3, (20, 28))]


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_tokenizer(folder: Path) -> None:
    """A word-level tokenizer of the synthetic meta's words (ids below the tiny text encoder's 100)."""
    words = ["the", "red", "green", "blue", "blob", "take", "1", "2", ",", "a"]
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", *words])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]")
    fast.save_pretrained(folder)


class FakeSam3:
    """Stands in for Sam3VideoModel: records each call (frame, the session's frame count and the
    frame's shape, the prompts); on frame t shows objects 0 and 1 of the
    first prompt (scores 0.3 and 0.9; object 1 suppressed on frame 1) and object 2 of the second
    prompt, which hot start removes."""

    def __init__(self) -> None:
        self.config = SimpleNamespace(image_size=28)
        self.calls: list[tuple[int, tuple[int, ...], dict[int, str]]] = []

    def __call__(self, inference_session: Any, frame_idx: int):
        session = inference_session
        frame = session.get_frame(frame_idx)
        self.calls.append((frame_idx, (session.num_frames, *frame.shape), dict(session.prompts)))
        session.obj_id_to_prompt_id = {0: 0, 1: 0, 2: 1}
        session.obj_id_to_score = {0: 0.3, 1: 0.9, 2: 0.99}
        session.hotstart_removed_obj_ids = {2}
        logits = {obj: torch.full((1, 7, 7), float(obj + frame_idx)) for obj in range(3)}
        return SimpleNamespace(
            obj_id_to_mask=logits,
            obj_id_to_tracker_score={0: 0.2, 1: 0.5 + frame_idx / 10, 2: 1.0},
            suppressed_obj_ids={1} if frame_idx == 1 else set(),
        )


def test_predictor_runs_every_frame_and_answers_with_the_best_track(tmp_path: Path) -> None:
    """The whole video in the session (not streamed: hot-start removal stays on), the model on
    frames 0, 1, 2 in order, one prompt per distinct text; per text the best kept track."""
    write_tokenizer(tmp_path)
    model = FakeSam3()
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tmp_path)
    predictor = Sam3Predictor(model, tokenizer, torch.device("cpu"))  # type: ignore[arg-type]
    frames = [Image.new("RGB", (10, 6), (t, 0, 0)) for t in range(3)]
    texts = ["the red blob", "the blue blob", "the red blob"]
    first, second, third = predictor.predict(frames, texts)
    assert [(t, shape) for t, shape, _ in model.calls] == [(t, (3, 3, 28, 28)) for t in range(3)]
    assert model.calls[0][2] == {0: "the red blob", 1: "the blue blob"}  # one prompt per text
    # the first prompt's best track is object 1 (0.9), hidden on frame 1 where it is suppressed
    assert first.scores.tolist() == [0.5, 0.0, 0.7]
    assert first.probs.shape == (3, 6, 10)
    assert np.allclose(
        first.probs[[0, 2]], torch.sigmoid(torch.tensor([[1.0], [3.0]])).numpy()[..., None]
    )
    assert (first.probs[1] == 0).all()
    # the second prompt's only track was removed: nothing found
    assert (second.probs == 0).all() and (second.scores == 0).all()
    assert np.array_equal(third.probs, first.probs)


def write_setup(root: Path) -> Dataset:
    write_refytvos(root / "data", "valid", SPECS)
    torch.manual_seed(0)
    build(tiny()).save_pretrained(root / "sam3")
    write_tokenizer(root / "sam3")
    return open_dataset("refytvos", root / "data", "valid")


def argv(root: Path, out: Path) -> list[str]:
    return [
        "sam3", "--checkpoint", str(root / "sam3"), "--out", str(out), "--data", str(root / "data"),
        "--dataset", "refytvos", "--split", "valid", "--pretrained", str(root),
    ]  # fmt: skip


def test_tiny_model_through_the_driver(tmp_path: Path) -> None:
    dataset = write_setup(tmp_path)
    out = tmp_path / "run"
    assert main(argv(tmp_path, out)) == 0
    run = Run(out)
    key_frames = run.key_frames()
    for video in dataset:
        scores = run.scores(video)
        for exp_id in video.exp_ids:
            assert run.masks(video, exp_id).shape == (
                len(video.frames),
                *video.checked_frame_size(),
            )
            assert len(scores[exp_id]) == len(video.frames)
            assert all(0.0 <= s <= 1.0 for s in scores[exp_id])
            key = key_frames[video.id][exp_id]["index_info"]["class_index"]
            assert scores[exp_id][key] == max(scores[exp_id])
    assert any(max(run.scores(video)[e]) > 0 for video in dataset for e in video.exp_ids)
    meta = json.loads((out / "run.json").read_text())
    assert meta["config"]["model"] == "sam3" and meta["value_domain"] == "logit"
    assert meta["checkpoint"]["folder"] == "sam3"
    assert [f["file"] for f in meta["checkpoint"]["files"]] == ["config.json", "model.safetensors"]


def test_missing_weights_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_refytvos(tmp_path / "data", "valid", SPECS)
    out = tmp_path / "run"
    assert main(argv(tmp_path, out)) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'sam3'}: weights folder is missing" in err and "facebook/sam3" in err
    assert not out.exists()


def test_entry_builds_the_full_size_on_meta() -> None:
    with torch.device("meta"):
        model = ENTRY.build("full")
    assert sum(p.numel() for p in model.parameters()) > 500_000_000

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import nn_double
import numpy as np
import pytest
import torch
from nn_double import ENTRY, save_checkpoint

from rvos_core.data import Dataset, open_dataset
from rvos_core.errors import ConfigError, InputError
from rvos_core.masks import quantize_probs
from rvos_core.runfolder import Run
from rvos_core.synthetic import VideoSpec, write_refytvos
from rvos_core.testing import tree_digest, unset_path_variables
from rvos_nn.checkpoint import CheckpointMismatch, load_checkpoint
from rvos_nn.infer import InferSettings, infer, main, predict_video, read_frames
from rvos_nn.predictor import ExpressionPrediction, PredictorContext
from rvos_nn.testing import write_tokenizer

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pretrained")
    write_tokenizer(root / "roberta-base", "roberta")
    return root


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "checkpoints" / "double.pth"
    path.parent.mkdir()
    save_checkpoint(path, seed=3)
    return path


def _settings(checkpoint: Path, pretrained: Path, **changes: object) -> InferSettings:
    values: dict[str, object] = {
        "variant": "tiny",
        "checkpoint": checkpoint,
        "pretrained": pretrained,
        "options": {"scale": "2"},
    }
    return InferSettings(**{**values, **changes})  # type: ignore[arg-type]


def _expected(dataset: Dataset, checkpoint: Path, pretrained: Path) -> dict[str, list]:
    """The double's predictions called directly (no driver): video -> [(probs, scores)]."""
    model = nn_double.build("tiny")
    load_checkpoint(model, checkpoint, ENTRY.checkpoint_rules)
    context = PredictorContext("tiny", torch.device("cpu"), "fp32", pretrained, {"scale": "2"})
    predictor = ENTRY.create_predictor(model.eval(), context)
    expected = {}
    with torch.inference_mode():
        for video in dataset:
            texts = [e.text for e in video.expressions]
            predictions = predictor.predict(read_frames(video), texts)
            expected[video.id] = [(p.probs, p.scores) for p in predictions]
    return expected


def test_run_holds_what_the_predictor_returns(
    tmp_path: Path, small_dataset: Dataset, checkpoint: Path, pretrained: Path
) -> None:
    out = tmp_path / "run"
    nn_double.CALLS.clear()
    assert infer(ENTRY, small_dataset, out, _settings(checkpoint, pretrained, save_probs=True))
    calls = list(nn_double.CALLS)
    assert calls == [(len(v.frames), tuple(e.text for e in v.expressions)) for v in small_dataset]
    run = Run(out)
    expected = _expected(small_dataset, checkpoint, pretrained)
    key_frames = run.key_frames()
    foreground = []
    for video in small_dataset:
        scores = run.scores(video)
        for exp_id, (probs, exp_scores) in zip(video.exp_ids, expected[video.id], strict=True):
            assert np.array_equal(run.masks(video, exp_id), probs > 0.5)
            foreground.append((probs > 0.5).mean())
            assert scores[exp_id] == exp_scores.tolist()
            assert np.array_equal(run.probs(video, exp_id), quantize_probs(probs))
            assert key_frames[video.id][exp_id]["index_info"]["class_index"] == np.argmax(
                exp_scores
            )
    assert min(foreground) > 0 and max(foreground) < 1  # masks that can tell a wrong writer
    meta = json.loads((out / "run.json").read_text())
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert meta["checkpoint"] == {
        "file": "double.pth",
        "bytes": checkpoint.stat().st_size,
        "sha256": digest,
    }
    assert meta["config"] == {
        "model": "double",
        "variant": "tiny",
        "options": {"scale": "2"},
        "precision": "fp32",
    }
    assert (meta["producer"], meta["inputs"]) == ("rvos_nn.infer", [])
    assert (meta["value_domain"], meta["has_probs"]) == ("logit", True)


def test_shards_give_the_bytes_of_one_run(
    tmp_path: Path, small_dataset: Dataset, checkpoint: Path, pretrained: Path
) -> None:
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    infer(ENTRY, small_dataset, whole, _settings(checkpoint, pretrained))
    assert not infer(ENTRY, small_dataset, sharded, _settings(checkpoint, pretrained, shard=(1, 2)))
    assert not (sharded / "run.json").exists()
    assert infer(ENTRY, small_dataset, sharded, _settings(checkpoint, pretrained, shard=(0, 2)))
    assert tree_digest(whole) == tree_digest(sharded)
    other = tmp_path / "other"
    infer(ENTRY, small_dataset, other, _settings(checkpoint, pretrained, shard=(0, 2)))
    with pytest.raises(ConfigError, match="other settings"):
        infer(
            ENTRY, small_dataset, other, _settings(checkpoint, pretrained, shard=(1, 2), options={})
        )


def test_unreadable_jpeg_keeps_earlier_videos_and_resumes(
    tmp_path: Path, small_dataset: Dataset, checkpoint: Path, pretrained: Path
) -> None:
    clean, out = tmp_path / "clean", tmp_path / "run"
    infer(ENTRY, small_dataset, clean, _settings(checkpoint, pretrained))
    frame = small_dataset.video("vid_b").frame_paths()[1]
    original = frame.read_bytes()
    frame.write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match="unreadable image") as info:
        infer(ENTRY, small_dataset, out, _settings(checkpoint, pretrained))
    assert info.value.path == frame
    assert (out / ".done" / "vid_a").is_file() and (out / "Annotations" / "vid_a").is_dir()
    assert not (out / ".done" / "vid_b").exists() and not (out / "Annotations" / "vid_b").exists()
    assert not (out / "run.json").exists()
    frame.write_bytes(original)
    assert infer(ENTRY, small_dataset, out, _settings(checkpoint, pretrained))
    assert tree_digest(clean) == tree_digest(out)


def test_missing_frame_fails_before_any_output(
    tmp_path: Path, small_dataset: Dataset, checkpoint: Path, pretrained: Path
) -> None:
    frame = small_dataset.video("vid_c").frame_paths()[2]
    frame.unlink()
    with pytest.raises(InputError, match="missing") as info:
        infer(ENTRY, small_dataset, tmp_path / "run", _settings(checkpoint, pretrained))
    assert info.value.path == frame
    assert not (tmp_path / "run").exists()


def test_frames_of_different_sizes(tmp_path: Path, small_dataset: Dataset) -> None:
    video = small_dataset.video("vid_a")
    frame = video.frame_paths()[1]
    frame.write_bytes((video.frame_paths()[0].parent.parent / "vid_b" / "00000.jpg").read_bytes())
    with pytest.raises(InputError, match="the video's first is 32x24") as info:
        read_frames(video)
    assert info.value.path == frame


def test_one_frame_video(tmp_path: Path, checkpoint: Path, pretrained: Path) -> None:
    write_refytvos(tmp_path / "data", "valid", [VideoSpec("single", 2, frames=1, size=(12, 18))])
    dataset = open_dataset("refytvos", tmp_path / "data", "valid")
    out = tmp_path / "run"
    assert infer(ENTRY, dataset, out, _settings(checkpoint, pretrained))
    run = Run(out)
    video = dataset.video("single")
    assert run.masks(video, "0").shape == (1, 12, 18)
    assert run.key_frames()["single"]["1"]["index_info"]["class_index"] == 0


def _with_texts(root: Path, texts: dict[tuple[str, str], str]) -> Dataset:
    specs = [VideoSpec("vid_a", 2, 2, (16, 20)), VideoSpec("vid_b", 2, 2, (16, 20))]
    bench = write_refytvos(root, "valid", specs)
    meta_file = bench / "meta_expressions" / "valid" / "meta_expressions.json"
    meta = json.loads(meta_file.read_text())
    for (video_id, exp_id), text in texts.items():
        meta["videos"][video_id]["expressions"][exp_id]["exp"] = text
    meta_file.write_text(json.dumps(meta))
    return open_dataset("refytvos", root, "valid")


def test_empty_expression_runs_and_a_too_long_one_is_an_input_error(
    tmp_path: Path, checkpoint: Path, pretrained: Path
) -> None:
    long = " ".join(["the horse running behind the white fence"] * 10)
    dataset = _with_texts(tmp_path / "data", {("vid_a", "1"): "", ("vid_b", "0"): long})
    out = tmp_path / "run"
    with pytest.raises(InputError, match="video vid_b: expression 'the horse") as info:
        infer(ENTRY, dataset, out, _settings(checkpoint, pretrained))
    assert info.value.path == dataset.meta_path
    assert (out / ".done" / "vid_a").is_file() and not (out / ".done" / "vid_b").exists()
    assert not (out / "run.json").exists()


def test_settings_errors_leave_no_output(
    tmp_path: Path, small_dataset: Dataset, checkpoint: Path, pretrained: Path
) -> None:
    out = tmp_path / "run"
    other = tmp_path / "other.pth"
    torch.save({"model": torch.nn.Linear(3, 2).state_dict()}, other)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(checkpoint.read_bytes()[:200])
    cases = [
        (_settings(checkpoint, tmp_path / "no_pretrained"), ConfigError, "PRETRAINED"),
        (_settings(other, pretrained), CheckpointMismatch, "checkpoint of another model"),
        (_settings(truncated, pretrained), InputError, "not a readable PyTorch checkpoint"),
        (_settings(checkpoint, pretrained, options={"nope": "1"}), ConfigError, "no option nope"),
        (_settings(checkpoint, pretrained, variant="huge"), ConfigError, "no variant 'huge'"),
        (_settings(checkpoint, pretrained, precision="fp16"), ConfigError, "fp16 needs"),
    ]
    for settings, error, message in cases:
        with pytest.raises(error, match=message):
            infer(ENTRY, small_dataset, out, settings)
        assert not out.exists()


def test_bf16_autocast_on_cpu(
    tmp_path: Path, small_dataset: Dataset, checkpoint: Path, pretrained: Path
) -> None:
    out = tmp_path / "run"
    assert infer(ENTRY, small_dataset, out, _settings(checkpoint, pretrained, precision="bf16"))
    assert json.loads((out / "run.json").read_text())["config"]["precision"] == "bf16"


class _Fixed:
    """A predictor returning given predictions (to test the driver's checks)."""

    def __init__(self, predictions: list[ExpressionPrediction]) -> None:
        self.predictions = predictions

    def predict(self, frames: object, texts: object) -> list[ExpressionPrediction]:
        return self.predictions


def test_predictor_output_is_checked(small_dataset: Dataset) -> None:
    video = small_dataset.video("vid_b")  # 2 expressions, 3 frames of 20x28
    frames = read_frames(video)
    good = ExpressionPrediction(np.zeros((3, 20, 28), np.float32), np.zeros(3))
    assert len(list(predict_video(_Fixed([good, good]), video, frames))) == 2
    cases = {
        "fewer than 2": [good],
        "more than 2": [good, good, good],
        r"need \(3, 20, 28\)": [good, ExpressionPrediction(np.zeros((3, 28, 20)), np.zeros(3))],
        "non-finite": [good, ExpressionPrediction(good.probs, np.array([0, np.nan, 0]))],
    }
    for message, predictions in cases.items():
        with pytest.raises(ValueError, match=message):
            list(predict_video(_Fixed(predictions), video, frames))


def _paths_env(tmp_path: Path, data: Path, pretrained: Path, checkpoints: Path) -> Path:
    path = tmp_path / "paths.env"
    lines = [
        f"DATA = {data}",
        f"PRETRAINED = {pretrained}",
        f"CHECKPOINTS = {checkpoints}",
        f"WORK = {tmp_path / 'work'}",
        "SPLIT = valid",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli(
    tmp_path: Path,
    registered: Path,
    small_data: Path,
    checkpoint: Path,
    pretrained: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env_file = _paths_env(tmp_path, small_data, pretrained, checkpoint.parent)
    unset_path_variables(monkeypatch)
    monkeypatch.setenv("RVOS_PATHS_ENV", str(env_file))
    out = tmp_path / "run"
    common = ["--out", str(out), "--dataset", "refytvos"]
    assert main(["double", *common, "--variant", "tiny", "--option", "scale=2"]) == 0
    assert json.loads((out / "run.json").read_text())["checkpoint"]["file"] == "double.pth"
    bad = {
        "--option scale": "expects key=value",
        "--precision fp8": "--precision 'fp8'",
        "--shard 3/2": "need 0 <= i < n",
    }
    for options, message in bad.items():
        assert main(["double", "--out", str(tmp_path / "bad"), *options.split()]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    assert main(["misnamed", "--out", str(tmp_path / "bad")]) == 2
    assert "must be a rvos_nn.predictor.ModelEntry named 'misnamed'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["double", "--out", str(tmp_path / "bad"), "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err


def test_cli_reads_only_the_variables_its_options_leave_out(
    tmp_path: Path,
    registered: Path,
    small_data: Path,
    checkpoint: Path,
    pretrained: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    unset_path_variables(monkeypatch)
    empty = tmp_path / "paths.env"
    empty.write_text("# nothing set\n")
    monkeypatch.setenv("RVOS_PATHS_ENV", str(empty))
    out = tmp_path / "run"
    given = ["--checkpoint", str(checkpoint), "--pretrained", str(pretrained)]
    given += ["--data", str(small_data), "--split", "valid", "--variant", "tiny"]
    assert main(["double", "--out", str(out), *given, "--option", "scale=2"]) == 0
    assert "run complete" in capsys.readouterr().err
    for option, variable in (("--pretrained", "PRETRAINED"), ("--data", "DATA")):
        at = given.index(option)
        rest = given[:at] + given[at + 2 :]
        assert main(["double", "--out", str(tmp_path / "bad"), *rest]) == 2
        err = capsys.readouterr().err
        assert err == f"error: {variable} is not set: add it to paths.env or pass {option}\n"
    assert not (tmp_path / "bad").exists()


def test_module_cli(
    tmp_path: Path, registered: Path, small_data: Path, checkpoint: Path, pretrained: Path
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(registered)]),
        "RVOS_PATHS_ENV": str(_paths_env(tmp_path, small_data, pretrained, checkpoint.parent)),
    }
    out = tmp_path / "run"
    command = [sys.executable, "-m", "rvos_nn.infer", "double", "--out", str(out)]
    command += ["--data", str(small_data), "--dataset", "refytvos", "--split", "valid"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert (out / "run.json").is_file() and "run complete" in done.stderr
    again = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert again.returncode == 0 and "nothing to do" in again.stderr


def test_a_finished_model_run_asked_with_another_checkpoint_is_refused(
    tmp_path: Path, small_dataset: Dataset, pretrained: Path, capsys: pytest.CaptureFixture
) -> None:
    first, second = tmp_path / "first.pth", tmp_path / "second.pth"
    save_checkpoint(first, seed=3)
    save_checkpoint(second, seed=4)

    def settings(checkpoint: Path) -> InferSettings:
        return InferSettings("tiny", checkpoint, pretrained, options={"scale": "2"})

    assert infer(ENTRY, small_dataset, tmp_path / "run", settings(first))
    assert infer(ENTRY, small_dataset, tmp_path / "run", settings(first))
    assert "nothing to do" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"checkpoint\.sha256 = \"[0-9a-f]+\" in run\.json"):
        infer(ENTRY, small_dataset, tmp_path / "run", settings(second))


def test_a_model_run_of_an_empty_split_is_refused(tmp_path: Path, pretrained: Path) -> None:
    write_refytvos(tmp_path / "data", "valid", [], frames=False)
    dataset = open_dataset("refytvos", tmp_path / "data", "valid")
    save_checkpoint(tmp_path / "double.pth", seed=3)
    settings = InferSettings("tiny", tmp_path / "double.pth", pretrained, options={"scale": "2"})
    with pytest.raises(InputError, match="lists no videos") as info:
        infer(ENTRY, dataset, tmp_path / "run", settings)
    assert info.value.path == dataset.meta_path
    assert not (tmp_path / "run").exists()


def _write_zoo(folder: Path, checkpoint: Path, pretrained: Path) -> Path:
    """A zoo of the double: its weights as safetensors, the tokenizers, the manifest."""
    from rvos_nn.zoo import MANIFEST, VERSION, file_sha256, write_weights

    folder.mkdir()
    state = torch.load(checkpoint, weights_only=True)["model"]
    weights = write_weights(state, folder / "double.safetensors")
    (folder / "pretrained").symlink_to(pretrained)
    entry = {"kind": "model", "file": weights.name, "variant": "tiny"}
    entries = {"double": {**entry, "sha256": file_sha256(weights)}}
    (folder / MANIFEST).write_text(json.dumps({"version": VERSION, "entries": entries}))
    return folder


def test_cli_with_a_zoo_takes_its_variant_weights_and_tokenizers(
    tmp_path: Path,
    registered: Path,
    small_data: Path,
    checkpoint: Path,
    pretrained: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    unset_path_variables(monkeypatch)
    (tmp_path / "paths.env").write_text("# nothing set\n")
    monkeypatch.setenv("RVOS_PATHS_ENV", str(tmp_path / "paths.env"))
    zoo = _write_zoo(tmp_path / "zoo", checkpoint, pretrained)
    data = ["--data", str(small_data), "--split", "valid", "--option", "scale=2"]
    assert main(["double", "--zoo", str(zoo), "--out", str(tmp_path / "zoo-run"), *data]) == 0
    # the same file named by hand (the zoo stores float16, the checkpoint float32)
    weights = zoo / "double.safetensors"
    given = ["--checkpoint", str(weights), "--pretrained", str(pretrained), "--variant", "tiny"]
    assert main(["double", "--out", str(tmp_path / "run"), *given, *data]) == 0
    runs = [Run(tmp_path / name) for name in ("zoo-run", "run")]
    for video in open_dataset("refytvos", small_data, "valid"):
        for exp_id in video.exp_ids:
            assert np.array_equal(runs[0].masks(video, exp_id), runs[1].masks(video, exp_id))
    capsys.readouterr()
    bad = {
        ("--checkpoint", str(checkpoint)): "--zoo and --checkpoint both name weights",
        ("--variant", "full"): "the zoo's double is variant tiny",
    }
    for extra, message in bad.items():
        out = ["--out", str(tmp_path / "bad"), *data]
        assert main(["double", "--zoo", str(zoo), *extra, *out]) == 2
        assert message in capsys.readouterr().err
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    assert main(["double", "--zoo", str(zoo), "--out", str(tmp_path / "bad"), *data]) == 2
    assert "sha256 differs from the zoo's manifest.json" in capsys.readouterr().err
    (zoo / "manifest.json").write_text("{}")
    assert main(["double", "--zoo", str(zoo), "--out", str(tmp_path / "bad"), *data]) == 2
    assert "not a zoo manifest of version 1" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_zoo_files_narrow_dtypes_and_store_a_shared_tensor_once() -> None:
    from rvos_nn.zoo import shipped_tensors

    head = torch.randn(3, 2)
    index = torch.arange(400, dtype=torch.int64)
    wide = torch.tensor([1, 2**40])
    state = {"a.weight": head, "b.weight": head, "index": index, "count": torch.tensor(5)}
    kept = shipped_tensors({**state, "wide": wide})
    assert set(kept) == {"a.weight", "index", "count", "wide"}
    assert kept["a.weight"].dtype == torch.float16 and kept["index"].dtype == torch.int16
    assert kept["count"].dtype == torch.int64 and kept["wide"].dtype == torch.int64
    assert torch.equal(kept["index"].long(), index) and torch.equal(kept["wide"], wide)

"""Bad input to every command-line tool and Make target: a non-zero exit, no traceback, and one
``error:`` line naming the file (or the option) at fault.

One generated dataset, run folder and set of damaged files serve a table of cases. Each case is
a command and the text its error line must contain; ``validate`` reports a damaged run as
problems on stdout (exit 1) and its stderr must stay empty.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from rvos_core.masks import encode_mask_png
from rvos_core.paths import VARIABLES
from rvos_core.synthetic import VideoSpec, expression_masks, write_mevis, write_refytvos
from rvos_nn.testing import write_tokenizer

ROOT = Path(__file__).resolve().parents[1]
NN_TESTS = ROOT / "nn" / "tests"
SPEC = VideoSpec("b0000001", expressions=2, frames=2, size=(12, 16))
DOUBLE = "[rvos.models]\ndouble = nn_double:ENTRY\n"


class Hostile:
    """Unpickling it would create the file ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


@dataclass(frozen=True)
class Corpus:
    """The folder of every input; ``good`` is a complete run of the split under ``data``."""

    root: Path
    env: dict[str, str]

    def __truediv__(self, name: str) -> Path:
        return self.root / name


def _environment(root: Path) -> dict[str, str]:
    """Only paths.env under ``root`` (through RVOS_PATHS_ENV), the test double registered."""
    clean = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    python_path = [str(NN_TESTS), str(root / "entry_points"), clean.get("PYTHONPATH", "")]
    return {
        **clean,
        "RVOS_PATHS_ENV": str(root / "paths.env"),
        "PYTHONPATH": os.pathsep.join(p for p in python_path if p),
        "RVOS_PROGRESS": "0",
    }


def _write_settings(root: Path) -> None:
    info = root / "entry_points" / "rvos_bad_input_double-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: rvos-bad-input-double\nVersion: 0\n"
    )
    (info / "entry_points.txt").write_text(DOUBLE)
    write_tokenizer(root / "pretrained" / "roberta-base", "roberta")
    (root / "checkpoints").mkdir()
    values = {
        "DATA": root / "data",
        "PRETRAINED": root / "pretrained",
        "CHECKPOINTS": root / "checkpoints",
        "WORK": root / "work",
        "SPLIT": "valid",
    }
    (root / "paths.env").write_text("".join(f"{k} = {v}\n" for k, v in values.items()))


def _write_torch_files(root: Path) -> None:
    logits = {
        e: torch.from_numpy(np.where(m, 4.0, -4.0).astype(np.float32))
        for e, m in expression_masks(SPEC).items()
    }
    entry = {e: {"mask_logits": v, "class_info": [0.2, 0.7]} for e, v in logits.items()}
    torch.save({SPEC.id: entry}, root / "model.pth")
    good = (root / "model.pth").read_bytes()
    (root / "truncated.pth").write_bytes(good[: len(good) // 2])
    (root / "garbage.pth").write_text("hello, not a torch file")
    (root / "empty.pth").write_bytes(b"")
    (root / "folder.pth").mkdir()
    torch.save({SPEC.id: {"0": Hostile(root / "executed")}}, root / "hostile.pth")
    torch.save({"model": {"w": Hostile(root / "executed")}}, root / "hostile_ck.pth")


def _damaged_copies(root: Path) -> None:
    """Copies of the good run and of the dataset, each with one damaged file."""
    frame = f"{SPEC.frame_names[1]}.png"
    for name in ("truncated_png", "bad_run_json", "incomplete", "wrong_size"):
        shutil.copytree(root / "good", root / name)
    png = root / "truncated_png" / "Annotations" / SPEC.id / "1" / frame
    png.write_bytes(png.read_bytes()[:-30])
    first = root / "wrong_size" / "Annotations" / SPEC.id / "0" / f"{SPEC.frame_names[0]}.png"
    first.write_bytes(encode_mask_png(np.ones((3, 3), bool)))
    (root / "bad_run_json" / "run.json").write_text("{not json")
    (root / "incomplete" / "run.json").unlink()
    shutil.copytree(root / "good" / "Annotations", root / "tree")
    shutil.copytree(root / "tree", root / "tree_truncated")
    shutil.copy(png, root / "tree_truncated" / SPEC.id / "1" / frame)
    (root / "key_frames.json").write_text("[1, 2")
    shutil.copytree(root / "data", root / "data_truncated")
    jpeg = root / "data_truncated" / "refer_youtube_vos" / "valid" / "JPEGImages" / SPEC.id
    jpeg = jpeg / f"{SPEC.frame_names[1]}.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[:-60])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    root = tmp_path_factory.mktemp("bad_input")
    write_refytvos(root / "data", "valid", [SPEC])
    _write_settings(root)
    write_mevis(root / "data", "valid", [SPEC])
    _write_torch_files(root)
    made = Corpus(root, _environment(root))
    imported = _run(made, ["-m", "rvos_fusion", "split-pth", str(root / "model.pth")], "good")
    assert imported.returncode == 0, imported.stderr
    (root / "checkpoints" / "double.pth").write_bytes((root / "garbage.pth").read_bytes())
    save = (
        f"from nn_double import save_checkpoint; save_checkpoint({str(root / 'double_ok.pth')!r})"
    )
    assert _run(made, ["-c", save]).returncode == 0
    _damaged_copies(root)
    return made


def _run(corpus: Corpus, argv: list[str], out: str | None = None) -> subprocess.CompletedProcess:
    """``python ARGV`` in the corpus folder; ``out`` adds ``--out`` and the dataset options (and
    ``--domain logit`` for split-pth)."""
    extra = ["--domain", "logit"] if "split-pth" in argv else []
    if out is not None:
        extra += ["--out", str(corpus / out), "--data", str(corpus / "data"), "--split", "valid"]
    return subprocess.run(
        [sys.executable, *argv, *extra],
        cwd=corpus.root,
        env=corpus.env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_one_error(result: subprocess.CompletedProcess, names: str) -> None:
    """Non-zero exit, no traceback, one ``error:`` line that names ``names``, nothing else of ours."""
    err = result.stderr
    assert result.returncode != 0, err
    assert "Traceback" not in err and "\x1b" not in err, err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and names in errors[0], err
    usage = [line for line in err.splitlines() if line.startswith(("usage:", "  "))]
    make = [line for line in err.splitlines() if line.startswith("make")]
    assert len(errors) + len(usage) + len(make) == len(err.splitlines()), err


# (case, argv after python; "{x}" is a corpus path, the text the error line must contain)
CLI_CASES = {
    "infer: unknown model": (["-m", "rvos_nn.infer", "nomodel", "--out", "{o}"], "nomodel"),
    "infer: empty --out": (["-m", "rvos_nn.infer", "double", "--out", ""], "--out"),
    "infer: missing checkpoint": (
        ["-m", "rvos_nn.infer", "double", "--out", "{o}", "--checkpoint", "{absent.pth}"],
        "{absent.pth}",
    ),
    "infer: garbage default checkpoint": (
        ["-m", "rvos_nn.infer", "double", "--out", "{o}", "--variant", "tiny"],
        "{checkpoints}/double.pth",
    ),
    "infer: hostile checkpoint": (
        ["-m", "rvos_nn.infer", "double", "--out", "{o}", "--checkpoint", "{hostile_ck.pth}"],
        "{hostile_ck.pth}",
    ),
    "infer: missing --data": (
        ["-m", "rvos_nn.infer", "double", "--out", "{o}", "--data", "{nowhere}"],
        "{nowhere}",
    ),
    "infer: bad --option": (
        ["-m", "rvos_nn.infer", "double", "--out", "{o}", "--option", "scale"],
        "--option",
    ),
    "validate: missing run": (["-m", "rvos_core.validate", "{absent}"], "{absent}"),
    "validate: garbage run.json": (
        ["-m", "rvos_core.validate", "{bad_run_json}"],
        "{bad_run_json}/run.json",
    ),
    "validate: empty --split": (
        ["-m", "rvos_core.validate", "{good}", "--split", ""],
        "--split",
    ),
    "checkpoint: missing file": (
        ["-m", "rvos_nn.checkpoint_report", "double", "{absent.pth}"],
        "{absent.pth}",
    ),
    "checkpoint: garbage file": (
        ["-m", "rvos_nn.checkpoint_report", "double", "{garbage.pth}"],
        "{garbage.pth}",
    ),
    "checkpoint: hostile file": (
        ["-m", "rvos_nn.checkpoint_report", "double", "{hostile_ck.pth}"],
        "{hostile_ck.pth}",
    ),
    "checkpoint: unknown model": (
        ["-m", "rvos_nn.checkpoint_report", "nomodel", "{garbage.pth}"],
        "nomodel",
    ),
    "parity: missing fixture": (["-m", "rvos_nn.parity", "{absent}"], "{absent}"),
    "parity: a file, not a fixture": (["-m", "rvos_nn.parity", "{garbage.pth}"], "{garbage.pth}"),
    "vote: missing run": (
        ["-m", "rvos_fusion", "vote", "{absent}", "--min-votes", "1"],
        "{absent}",
    ),
    "vote: truncated mask": (
        [
            "-m",
            "rvos_fusion",
            "vote",
            "{good}",
            "{truncated_png}",
            "--min-votes",
            "1",
            "--unpaired",
            "1",
        ],
        "{truncated_png}/Annotations",
    ),
    "vote: a wrong size read first": (
        [
            "-m",
            "rvos_fusion",
            "vote",
            "{wrong_size}",
            "{good}",
            "--min-votes",
            "1",
            "--unpaired",
            "1",
        ],
        f"{{wrong_size}}/Annotations/{SPEC.id}/0/{SPEC.frame_names[0]}.png: mask is 3x3",
    ),
    "vote: garbage run.json": (
        ["-m", "rvos_fusion", "vote", "{bad_run_json}", "--min-votes", "1"],
        "{bad_run_json}/run.json",
    ),
    "vote: incomplete run": (
        ["-m", "rvos_fusion", "vote", "{incomplete}", "--min-votes", "1"],
        "{incomplete}",
    ),
    "vote: bad --weights": (
        ["-m", "rvos_fusion", "vote", "{good}", "--weights", "a,b"],
        "--weights",
    ),
    "split-pth: missing": (["-m", "rvos_fusion", "split-pth", "{absent.pth}"], "{absent.pth}"),
    "split-pth: garbage": (["-m", "rvos_fusion", "split-pth", "{garbage.pth}"], "{garbage.pth}"),
    "split-pth: truncated": (
        ["-m", "rvos_fusion", "split-pth", "{truncated.pth}"],
        "{truncated.pth}",
    ),
    "split-pth: empty": (["-m", "rvos_fusion", "split-pth", "{empty.pth}"], "{empty.pth}"),
    "split-pth: a folder": (["-m", "rvos_fusion", "split-pth", "{folder.pth}"], "{folder.pth}"),
    "split-pth: hostile": (["-m", "rvos_fusion", "split-pth", "{hostile.pth}"], "{hostile.pth}"),
    "import-png: missing folder": (["-m", "rvos_fusion", "import-png", "{absent}"], "{absent}"),
    "import-png: truncated mask": (
        ["-m", "rvos_fusion", "import-png", "{tree_truncated}"],
        "{tree_truncated}",
    ),
    "import-png: garbage key frames": (
        ["-m", "rvos_fusion", "import-png", "{tree}", "--key-frames", "{key_frames.json}"],
        "{key_frames.json}",
    ),
    "submission: missing run": (["-m", "rvos_fusion", "submission", "{absent}"], "{absent}"),
    "submission: truncated mask": (
        ["-m", "rvos_fusion", "submission", "{truncated_png}"],
        "{truncated_png}/Annotations",
    ),
    "eval: missing run": (
        ["-m", "rvos_eval", "{absent}", "--dataset", "mevis", "--split", "valid"],
        "{absent}",
    ),
    "eval: no Ref-DAVIS here": (["-m", "rvos_eval", "{good}", "--dataset", "refdavis"], "{data}"),
    "eval: unknown dataset": (["-m", "rvos_eval", "{good}", "--dataset", "ytvos"], "--dataset"),
    "vote: empty --out": (
        ["-m", "rvos_fusion", "vote", "{good}", "--out", "", "--min-votes", "1"],
        "--out",
    ),
    "submission: empty --out": (
        ["-m", "rvos_fusion", "submission", "{good}", "--out", ""],
        "--out",
    ),
    "submission: --out is a folder": (
        ["-m", "rvos_fusion", "submission", "{good}", "--out", "{folder.pth}"],
        "{folder.pth}: Is a directory",
    ),
    "import-png: empty folder": (["-m", "rvos_fusion", "import-png", ""], "folder"),
    "validate: empty run": (["-m", "rvos_core.validate", ""], "run"),
    "propagate: missing run": (
        ["-m", "rvos_vos.propagate", "aot", "--run", "{absent}", "--checkpoint", "{model.pth}"],
        "{absent}",
    ),
    "propagate: garbage checkpoint": (
        ["-m", "rvos_vos.propagate", "aot", "--run", "{good}", "--checkpoint", "{garbage.pth}"],
        "{garbage.pth}",
    ),
    "propagate: hostile checkpoint": (
        ["-m", "rvos_vos.propagate", "aot", "--run", "{good}", "--checkpoint", "{hostile_ck.pth}"],
        "{hostile_ck.pth}",
    ),
    "propagate: empty --run": (
        ["-m", "rvos_vos.propagate", "aot", "--run", "", "--checkpoint", "{model.pth}"],
        "--run",
    ),
}
# Cases whose command takes no --out or dataset options.
NO_OUT = ("validate: ", "checkpoint: ", "parity: ")


def _fill(text: str, corpus: Corpus) -> str:
    """Replace every ``{name}`` by the corpus path of ``name``."""
    while "{" in text:
        start, end = text.index("{"), text.index("}")
        text = text[:start] + str(corpus / text[start + 1 : end]) + text[end + 1 :]
    return text


def _folder_name(case: str) -> str:
    return "out_" + "".join(c if c.isalnum() else "_" for c in case)


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_bad_input(corpus: Corpus, case: str) -> None:
    argv, names = CLI_CASES[case]
    command = [_fill(a, corpus) for a in argv]
    out = None if case.startswith(NO_OUT) or "--out" in argv else _folder_name(case)
    if case.startswith("validate: "):
        command += ["--data", str(corpus / "data")] + (
            ["--split", "valid"] * ("--split" not in argv)
        )
    result = _run(corpus, command, out)
    assert_one_error(result, _fill(names, corpus))
    assert not (corpus / "executed").exists()
    if out is not None:
        assert not (corpus / out / "run.json").exists()


@pytest.mark.parametrize(
    ("data", "names"),
    [("data_truncated", "unreadable image"), ("nowhere", "nowhere")],
)
def test_infer_bad_dataset(corpus: Corpus, data: str, names: str) -> None:
    """A truncated frame (read in full) or a missing dataset folder, with a good checkpoint."""
    argv = ["-m", "rvos_nn.infer", "double", "--variant", "tiny", "--option", "scale=2"]
    argv += ["--checkpoint", str(corpus / "double_ok.pth"), "--out", str(corpus / f"infer_{data}")]
    result = _run(corpus, [*argv, "--data", str(corpus / data), "--split", "valid"])
    assert_one_error(result, names)
    assert not (corpus / f"infer_{data}" / "run.json").exists()


def test_validate_reports_a_truncated_mask_alone(corpus: Corpus) -> None:
    """validate lists problems on stdout (exit 1); libpng or OpenCV print nothing of their own."""
    argv = ["-m", "rvos_core.validate", str(corpus / "truncated_png")]
    result = _run(corpus, [*argv, "--data", str(corpus / "data"), "--split", "valid"])
    assert result.returncode == 1 and result.stderr == ""
    assert f"{SPEC.frame_names[1]}.png: truncated PNG" in result.stdout


MAKE_CASES = {
    "validate: missing node": (["validate", "NODE=absent"], "absent"),
    "import-pth: garbage": (
        ["import-pth", "PTH={garbage.pth}", "NODE=x", "DOMAIN=logit"],
        "{garbage.pth}",
    ),
    "import-pth: bad domain": (
        ["import-pth", "PTH={model.pth}", "NODE=x", "DOMAIN=odd"],
        "--domain",
    ),
    "vote: missing run": (["vote", "OUT=x", "RUNS=absent", "VOTE_OPTS=--min-votes 1"], "absent"),
    "evaluate: no Ref-DAVIS": (["evaluate", "NODE=good", "DATASET=refdavis"], "{data}"),
    "propagate-aot: node nothing makes": (["propagate-aot", "RUN=absent"], "absent"),
    "submission: missing DATA": (["submission", "DATA={nowhere}"], "{nowhere}"),
    "submission: empty DATA": (["submission", "DATA="], "error: (empty): DATA is not a folder"),
    "validate: empty SPLIT": (["validate", "NODE=good", "SPLIT="], "--split"),
}


@pytest.mark.parametrize("case", sorted(MAKE_CASES))
def test_make_bad_input(corpus: Corpus, case: str) -> None:
    args, names = MAKE_CASES[case]
    work = corpus / "make_work"
    if not (work / "valid" / "good").exists():
        shutil.copytree(corpus / "good", work / "valid" / "good")
    variables = [f"WORK={work}", f"PY={sys.executable}", f"DATA={corpus / 'data'}"]
    result = subprocess.run(
        ["make", "-f", str(ROOT / "Makefile"), *variables, *(_fill(a, corpus) for a in args)],
        cwd=corpus.root,
        env=corpus.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert_one_error(result, _fill(names, corpus))
    assert sorted(p.name for p in (work / "valid").iterdir()) == ["good"]

"""End to end: the Make targets that work on single nodes (evaluate, import-pth, vote, validate)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from pycocotools import mask as coco_mask

from rvos_core.data import open_dataset
from rvos_core.paths import VARIABLES, parse_paths_env
from rvos_core.runfolder import Run, RunWriter, VideoResult
from rvos_core.synthetic import VideoSpec, expression_masks, write_mevis, write_refytvos

ROOT = Path(__file__).resolve().parents[1]
SPEC = VideoSpec("m0000001", expressions=2, frames=3, size=(24, 32))


def make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-C", str(ROOT), *args, f"PY={sys.executable}"], capture_output=True, text=True
    )


def rle(mask: np.ndarray) -> dict:
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in encoded["size"]], "counts": encoded["counts"].decode()}


def test_evaluate_a_mevis_run(tmp_path: Path) -> None:
    # expression 0 is predicted exactly (J = F = 1 on every frame), expression 1 not at all
    # (J = F = 0 on every frame, its ground truth is never empty): J = F = J&F = 0.5
    truth = expression_masks(SPEC)
    split = write_mevis(tmp_path / "data", "valid_u", [SPEC]) / "valid_u"  # frames for the report
    meta = {
        "videos": {
            SPEC.id: {
                "expressions": {
                    e: {"exp": "x", "obj_id": [int(e)], "anno_id": [int(e)]} for e in truth
                },
                "frames": SPEC.frame_names,
            }
        }
    }
    (split / "meta_expressions.json").write_text(json.dumps(meta))
    (split / "mask_dict.json").write_text(
        json.dumps({e: [rle(m) for m in truth[e]] for e in truth})
    )
    dataset = open_dataset("mevis", tmp_path / "data", "valid_u")
    writer = RunWriter(
        tmp_path / "work" / "valid_u" / "node",
        dataset,
        {"producer": "test", "value_domain": "binary"},
    )
    writer.write_video(
        dataset.video(SPEC.id), VideoResult(masks={"0": truth["0"], "1": np.zeros_like(truth["1"])})
    )
    assert writer.finalize()
    common = [
        f"DATA={tmp_path / 'data'}",
        f"WORK={tmp_path / 'work'}",
        "SPLIT=valid_u",
        "DATASET=mevis",
    ]
    result = make("evaluate", "NODE=node", *common)
    assert result.returncode == 0, result.stderr
    summary = json.loads(
        (tmp_path / "work" / "valid_u" / "node" / "eval" / "summary.json").read_text()
    )
    assert (summary["J"], summary["F"], summary["J&F"], summary["num_expressions"]) == (
        0.5,
        0.5,
        0.5,
        2,
    )


def test_import_vote_validate(tmp_path: Path) -> None:
    write_refytvos(tmp_path / "data", "valid", [SPEC])
    truth = expression_masks(SPEC)
    logits = {
        e: torch.from_numpy(np.where(m, 4.0, -4.0).astype(np.float32)) for e, m in truth.items()
    }
    pth = tmp_path / "model.pth"
    torch.save(
        {
            SPEC.id: {
                e: {"mask_logits": v, "class_info": [0.1, 0.9, 0.5]} for e, v in logits.items()
            }
        },
        pth,
    )
    common = [f"DATA={tmp_path / 'data'}", f"WORK={tmp_path / 'work'}", "SPLIT=valid"]
    assert (
        make("import-pth", f"PTH={pth}", "NODE=imported", "DOMAIN=logit", *common).returncode == 0
    )
    run = Run(tmp_path / "work" / "valid" / "imported")
    video = open_dataset("refytvos", tmp_path / "data", "valid").video(SPEC.id)
    assert np.array_equal(run.masks(video, "1"), truth["1"])
    assert run.key_frames()[SPEC.id]["0"] == {"index_info": {"class_index": 1}}
    vote = make(
        "vote",
        "OUT=voted",
        "RUNS=imported imported",
        "VOTE_OPTS=--min-votes 4 --unpaired reference",
        *common,
    )
    assert vote.returncode == 0, vote.stderr
    assert make("validate", "NODE=voted", *common).returncode == 0
    (tmp_path / "work" / "valid" / "voted" / "Annotations" / SPEC.id / "1" / "00005.png").unlink()
    broken = make("validate", "NODE=voted", *common)
    assert broken.returncode != 0 and "00005.png: mask PNG is missing" in broken.stdout


def test_usage_errors_name_what_is_missing(tmp_path: Path) -> None:
    for target, word in (
        ("vote", "OUT="),
        ("import-pth", "PTH="),
        ("validate", "NODE="),
        ("propagate-aot", "RUN="),
    ):
        result = make(target, f"WORK={tmp_path}")
        assert result.returncode != 0 and word in result.stderr, (target, result.stderr)


def test_readme_lists_every_make_target() -> None:
    """Every target `make help` lists is documented in README.md as `make <target>`."""
    listed = make("help")
    assert listed.returncode == 0, listed.stderr
    rows = [line for line in listed.stdout.splitlines() if line.startswith("  ")]
    targets = {line.split()[0] for line in rows}
    assert {"submission", "test", "env-uninext", "round1"} <= targets
    readme = (ROOT / "README.md").read_text()
    missing = sorted(t for t in targets if f"make {t}" not in readme)
    assert not missing, f"README.md does not document: {missing}"


def make_from(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`make -f ROOT/Makefile ARGS` run in ``folder`` with only ``env`` of paths.env's variables."""
    clean = {k: v for k, v in os.environ.items() if k not in VARIABLES and k != "RVOS_PATHS_ENV"}
    return subprocess.run(
        ["make", "-f", str(ROOT / "Makefile"), *args],
        cwd=folder,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
    )


def printed_paths(result: subprocess.CompletedProcess) -> dict[str, str]:
    assert result.returncode == 0, result.stderr
    return dict(line.split(" = ", 1) for line in result.stdout.splitlines())


def test_paths_env_is_relative_to_its_folder_from_any_folder(tmp_path: Path) -> None:
    in_file = parse_paths_env(ROOT / "paths.env")
    expected = {n: str(ROOT / in_file[n]) for n in VARIABLES if n != "SPLIT"}
    assert printed_paths(make_from(tmp_path, "paths")) == {**expected, "SPLIT": in_file["SPLIT"]}


def test_environment_overrides_paths_env_and_the_command_line_overrides_both(
    tmp_path: Path,
) -> None:
    env = {"DATA": "/from/env", "SPLIT": "test", "WORK": "relative/work", "CHECKPOINTS": ""}
    shown = printed_paths(make_from(tmp_path, "paths", "SPLIT=cmd", env=env))
    assert (shown["DATA"], shown["WORK"], shown["SPLIT"]) == ("/from/env", "relative/work", "cmd")
    assert shown["CHECKPOINTS"] == str(ROOT / parse_paths_env(ROOT / "paths.env")["CHECKPOINTS"])
    dry = make_from(tmp_path, "-n", "submission", env={"DATA": "/from/env", "WORK": str(tmp_path)})
    assert dry.returncode == 0, dry.stderr
    assert f"--out {tmp_path}/valid/submission.zip --data /from/env " in dry.stdout

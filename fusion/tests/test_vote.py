"""Votes on hand-made 1x4-pixel videos; every expected mask is worked out by hand in the comments."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fusion_testlib import bits, make_run, voted

from rvos_core.data import Dataset, open_dataset
from rvos_core.errors import ConfigError, InputError
from rvos_core.masks import encode_mask_png
from rvos_core.runfolder import Run
from rvos_core.synthetic import VideoSpec, write_refytvos
from rvos_fusion.vote import VoteConfig, groups, run_vote


def test_groups() -> None:
    assert groups(["0", "1", "2", "3", "4"], "pairs") == [("0", "1"), ("2", "3"), ("4",)]
    assert groups(["0", "1"], "pairs") == [("0", "1")]
    assert groups(["0", "1", "2"], "none") == [("0",), ("1",), ("2",)]


@pytest.fixture
def three_runs(tmp_path: Path, tiny: Dataset) -> list[Run]:
    # pixel:            p0 p1 p2 p3
    a = {"0": bits("1110", "0000"), "1": bits("1100", "0001"), "2": bits("1000", "1111")}
    b = {"0": bits("1100", "0000"), "1": bits("1000", "0001"), "2": bits("0100", "0000")}
    c = {"0": bits("1000", "0000"), "1": bits("0000", "0011"), "2": bits("0010", "0000")}
    scores = {"0": [0.2, 0.9], "1": [0.5, 0.5], "2": [0.7, 0.1]}
    return [
        make_run(tmp_path / "a", tiny, a, scores=scores),
        make_run(tmp_path / "b", tiny, b),
        make_run(tmp_path / "c", tiny, c),
    ]


def test_round1_rule_by_hand(three_runs: list[Run], tiny: Dataset, tmp_path: Path) -> None:
    # pair (0, 1), 6 maps, frame 0 counts p0..p3 = 5, 3, 1, 0 -> >= 3: 1100; frame 1 = 0, 0, 1, 3 -> 0001
    config = VoteConfig(min_votes=3, grouping="pairs", unpaired="reference", key_frames_from=0)
    out = voted(three_runs, tiny, config, tmp_path / "out")
    video = tiny.video("v")
    assert np.array_equal(out.masks(video, "0"), bits("1100", "0001"))
    assert np.array_equal(out.masks(video, "1"), bits("1100", "0001"))
    # unpaired expression 2: run 0 alone
    assert np.array_equal(out.masks(video, "2"), bits("1000", "1111"))
    assert out.key_frames()["v"] == {
        "0": {"index_info": {"class_index": 1}},
        "1": {"index_info": {"class_index": 0}},  # tie 0.5 / 0.5 -> earliest
        "2": {"index_info": {"class_index": 0}},
    }


def test_unpaired_threshold_and_no_scores(
    three_runs: list[Run], tiny: Dataset, tmp_path: Path
) -> None:
    # expression 2 alone, 3 maps: frame 0 = 1, 1, 1, 0 -> >= 2: 0000; frame 1 = 1, 1, 1, 1 -> 0000
    config = VoteConfig(min_votes=3, grouping="pairs", unpaired=1)
    out = voted(three_runs, tiny, config, tmp_path / "out")
    assert np.array_equal(out.masks(tiny.video("v"), "2"), bits("1110", "1111"))
    assert not out.has_scores and not (tmp_path / "out" / "key_frame.json").exists()


def test_grouping_none_and_weights(three_runs: list[Run], tiny: Dataset, tmp_path: Path) -> None:
    # expression 0 alone, weights 2, 1, 1: frame 0 votes = 4, 3, 2, 0 -> >= 3: 1100
    config = VoteConfig(min_votes=3, grouping="none", weights=(2.0, 1.0, 1.0))
    out = voted(three_runs, tiny, config, tmp_path / "out")
    assert np.array_equal(out.masks(tiny.video("v"), "0"), bits("1100", "0000"))
    # expression 1, frame 1 votes = 2+1+1, 0, 1, 2+1+1 -> 0001
    assert np.array_equal(out.masks(tiny.video("v"), "1"), bits("1000", "0001"))


def test_soft_vote_by_hand(tmp_path: Path, tiny: Dataset) -> None:
    # probabilities are multiples of 1/255, so the stored uint8 values are exact
    def p(*rows: list[int]) -> np.ndarray:
        return np.array([[row] for row in rows], np.float32) / 255

    one = {e: p([255, 200, 100, 0], [0, 0, 0, 0]) for e in "012"}
    two = {e: p([255, 60, 100, 0], [0, 0, 255, 0]) for e in "012"}
    runs = [
        make_run(
            tmp_path / f"r{i}",
            tiny,
            {e: v > 0.5 for e, v in probs.items()},
            probs=probs,
            domain="probability",
        )
        for i, probs in enumerate((one, two))
    ]
    # pair mean frame 0 = (255, 130, 100, 0)/255 -> > 0.5: 1100 ; frame 1 = (0, 0, 127.5, 0)/255 -> 0000
    config = VoteConfig(grouping="pairs", unpaired="reference", mode="soft")
    out = voted(runs, tiny, config, tmp_path / "out")
    assert np.array_equal(out.masks(tiny.video("v"), "0"), bits("1100", "0000"))


def test_compat_switch_reproduces_the_unpaired_bug(tmp_path: Path, tiny: Dataset) -> None:
    probs = {e: np.array([[[0.9, 0.2, 1e-3, 0.0]]] * 2, np.float32) for e in "012"}
    reference = make_run(
        tmp_path / "ref",
        tiny,
        {e: v > 0.5 for e, v in probs.items()},
        probs=probs,
        domain="probability",
    )
    other = make_run(tmp_path / "other", tiny, {e: bits("0000", "0000") for e in "012"})
    fixed = voted(
        [reference, other], tiny, VoteConfig(min_votes=1, unpaired="reference"), tmp_path / "fixed"
    )
    compat = VoteConfig(min_votes=1, unpaired="reference", compat_unpaired_sigmoid=True)
    buggy = voted([reference, other], tiny, compat, tmp_path / "buggy")
    assert np.array_equal(fixed.masks(tiny.video("v"), "2"), bits("1000", "1000"))
    # sigmoid(p) > 0.5 for every p > 0: 0.9, 0.2 and 1e-3 all become foreground
    assert np.array_equal(buggy.masks(tiny.video("v"), "2"), bits("1110", "1110"))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (VoteConfig(min_votes=3, weights=(1.0,), unpaired=1), "1 weights for 3 runs"),
        (VoteConfig(min_votes=3), "unpaired"),
        (VoteConfig(min_votes=0, unpaired=1), "min-votes"),
        (
            VoteConfig(min_votes=3, unpaired=1, compat_unpaired_sigmoid=True),
            "only with --unpaired reference",
        ),
        (VoteConfig(mode="soft", unpaired=1), "soft votes need stored probabilities"),
        (VoteConfig(min_votes=3, unpaired=1, key_frames_from=1), "no scores for key frames"),
        (VoteConfig(min_votes=3, unpaired=1, key_frames_from=5), "there are 3 runs"),
    ],
)
def test_bad_settings(
    three_runs: list[Run], tiny: Dataset, tmp_path: Path, config: VoteConfig, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        run_vote(three_runs, tiny, config, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda r: (r / "Annotations/v/1/00005.png").unlink(),
            r"v/1/00005\.png: mask PNG is missing",
        ),
        (
            lambda r: shutil.rmtree(r / "Annotations/v/2"),
            r"v/2/00000\.png: mask PNG is missing",
        ),
        (
            lambda r: shutil.rmtree(r / "Annotations/v"),
            r"v/0/00000\.png: mask PNG is missing",
        ),
        (
            lambda r: (r / "Annotations/v/0/00000.png").write_bytes(b"\x89PNG\r\n\x1a\n junk"),
            "not a PNG",
        ),
    ],
)
def test_damaged_input_run(
    three_runs: list[Run], tiny: Dataset, tmp_path: Path, damage, message: str
) -> None:
    damage(three_runs[1].root)
    config = VoteConfig(min_votes=3, unpaired=2)
    with pytest.raises(InputError, match=message):
        voted(three_runs, tiny, config, tmp_path / "out")
    assert not (tmp_path / "out" / "run.json").exists()
    assert not (tmp_path / "out" / "Annotations" / "v").exists()


def test_runs_of_different_sizes(three_runs: list[Run], tiny: Dataset, tmp_path: Path) -> None:
    wide = {e: np.zeros((2, 1, 5), bool) for e in "012"}
    from rvos_core.runfolder import RunWriter, VideoResult

    writer = RunWriter(tmp_path / "wide", tiny, {"producer": "t", "value_domain": "binary"})
    writer.write_video(tiny.video("v"), VideoResult(masks=wide))
    writer.finalize()
    with pytest.raises(InputError, match="mask is 1x5, expected 1x4"):
        voted(
            [*three_runs, Run(tmp_path / "wide")],
            tiny,
            VoteConfig(min_votes=3, unpaired=2),
            tmp_path / "out",
        )


def test_a_wrong_first_mask_is_blamed_not_the_next(tmp_path: Path) -> None:
    """With the split's frames present, every mask must have the frame size, so a wrong mask read
    first is the one named (not the correct mask of the next run)."""
    write_refytvos(tmp_path / "data", "valid", [VideoSpec("v", 3, 2, (1, 4))])
    framed = open_dataset("refytvos", tmp_path / "data", "valid")
    runs = [make_run(tmp_path / n, framed, {e: bits("1100", "0011") for e in "012"}) for n in "ab"]
    wrong = runs[0].mask_path("v", "0", framed.video("v").frames[0])
    wrong.write_bytes(encode_mask_png(np.ones((1, 5), bool)))
    with pytest.raises(InputError, match="mask is 1x5, expected 1x4") as info:
        voted(runs, framed, VoteConfig(min_votes=2, unpaired=1), tmp_path / "out")
    assert info.value.path == wrong

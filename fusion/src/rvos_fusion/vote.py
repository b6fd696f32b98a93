"""The vote operator: K runs -> one run, per pixel and frame.

The upstream rounds are configurations of it (docs/upstream.md):

* round 1 ("swap"): pairs, ``min_votes=3`` (of 3 runs x 2 expressions), an unpaired expression takes
  the reference run's (run 0's) mask, key frames from run 0;
* round 2 ("ensemble"): pairs, ``min_votes=4`` (of 4 x 2), an unpaired expression needs 3 of 4.

Pairs: expressions 2i and 2i+1 of a Ref-YouTube-VOS video describe one object, so each votes for its
sibling and both receive the same mask; with an odd count the last expression is unpaired. Grouping
"none" (MeViS) votes every expression on its own. Hard votes count foreground maps (times optional
per-run weights) against ``min_votes``; soft votes average stored probabilities (weighted) and keep
pixels above ``soft_threshold``.

Upstream bug (docs/upstream.md): its unpaired branch applies a sigmoid to the reference run's stored values even
when they are probabilities (every non-zero probability becomes foreground). We use the reference
run's own masks; ``compat_unpaired_sigmoid=True`` reproduces the bug for parity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rvos_core.data import Dataset, Video
from rvos_core.errors import ConfigError, InputError
from rvos_core.masks import encode_mask_png
from rvos_core.runfolder import ProbsReader, Run, RunRecord, VideoWriter, check_key_frames
from rvos_core.runner import Stage, Target, run_stage

Reference = Literal["reference"]


@dataclass(frozen=True)
class VoteConfig:
    """Settings of one vote (see the module docstring).

    Attributes:
        min_votes: foreground iff the (weighted) count of foreground maps of a group is >= this.
        grouping: "pairs" (expressions 2i, 2i+1 together) or "none".
        unpaired: rule for the last expression of an odd count in pairs mode: "reference" (run 0's
            mask alone) or a vote threshold over the K maps of that expression.
        key_frames_from: index of the run whose scores (hence key frames) the output carries.
        weights: one weight per run (default 1 each).
        mode: "hard" (count masks) or "soft" (average stored probabilities).
        soft_threshold: soft mode keeps pixels whose weighted mean probability is > this.
        compat_unpaired_sigmoid: reproduce upstream's unpaired-expression bug (docs/upstream.md).
    """

    min_votes: float = 0.0
    grouping: Literal["pairs", "none"] = "pairs"
    unpaired: float | Reference | None = None
    key_frames_from: int | None = None
    weights: tuple[float, ...] | None = None
    mode: Literal["hard", "soft"] = "hard"
    soft_threshold: float = 0.5
    compat_unpaired_sigmoid: bool = False

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], source: Path) -> VoteConfig:
        """A config from a recipe rule's table (rvos_core.recipe), numbers typed as the CLI types
        them; an unknown or ill-typed setting is an InputError naming ``source``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise InputError(source, f"unknown vote settings {unknown}; known: {sorted(known)}")
        values = dict(settings)
        try:
            for name in ("min_votes", "soft_threshold"):
                if name in values:
                    values[name] = float(values[name])
            if isinstance(values.get("unpaired"), int | float):
                values["unpaired"] = float(values["unpaired"])
            if values.get("weights") is not None:
                values["weights"] = tuple(float(w) for w in values["weights"])
        except (TypeError, ValueError) as exc:
            raise InputError(source, f"vote settings {dict(settings)}: {exc}") from None
        return cls(**values)

    def check(self, runs: Sequence[Run]) -> None:
        """Refuse settings that do not fit the runs (raises ConfigError)."""
        if not runs:
            raise ConfigError("a vote needs at least one run")
        if len(runs) > 127:
            raise ConfigError("at most 127 runs can vote together")
        if self.weights is not None and len(self.weights) != len(runs):
            raise ConfigError(f"{len(self.weights)} weights for {len(runs)} runs")
        if self.weights is not None and any(w < 0 for w in self.weights):
            raise ConfigError("weights must be non-negative")
        if self.mode == "hard" and self.min_votes <= 0:
            raise ConfigError("hard votes need --min-votes > 0")
        if self.grouping == "pairs" and self.unpaired is None:
            raise ConfigError("pair votes need a rule for an unpaired expression (--unpaired)")
        if self.compat_unpaired_sigmoid and self.unpaired != "reference":
            raise ConfigError("--compat-unpaired-sigmoid applies only with --unpaired reference")
        if self.key_frames_from is not None and not 0 <= self.key_frames_from < len(runs):
            raise ConfigError(
                f"--key-frames-from {self.key_frames_from}: there are {len(runs)} runs"
            )
        self._check_runs(runs)

    def _check_runs(self, runs: Sequence[Run]) -> None:
        if self.key_frames_from is not None and not runs[self.key_frames_from].has_scores:
            raise ConfigError(
                f"{runs[self.key_frames_from].root}: run has no scores for key frames"
            )
        if self.mode == "soft":
            for run in runs:
                if not run.has_probs:
                    raise ConfigError(f"{run.root}: soft votes need stored probabilities (probs/)")
        reference = runs[0]
        if (
            self.compat_unpaired_sigmoid
            and reference.value_domain == "probability"
            and not reference.has_probs
        ):
            raise ConfigError(
                f"{reference.root}: the compatibility rule needs stored probabilities"
            )


def groups(exp_ids: Sequence[str], grouping: str) -> list[tuple[str, ...]]:
    """Expression groups of a video: pairs (ids[0], ids[1]), (ids[2], ids[3]), ... and a last
    singleton for an odd count; or one group per expression."""
    if grouping == "none":
        return [(e,) for e in exp_ids]
    return [tuple(exp_ids[i : i + 2]) for i in range(0, len(exp_ids), 2)]


@dataclass
class _VideoVote:
    """Everything needed to vote one video, frame by frame."""

    runs: Sequence[Run]
    video: Video
    config: VoteConfig
    weights: np.ndarray
    shape: tuple[int, int] | None = None

    @property
    def float_sum(self) -> bool:
        """Sums are float32 for weights or probabilities, exact integer counts otherwise."""
        return self.config.weights is not None or self.config.mode == "soft"

    def _add(self, total: np.ndarray | None, values: np.ndarray, weight: float) -> np.ndarray:
        """Accumulate one map: uint8 counts of bool maps without weights (at most 255 maps),
        float32 sums with weights or probabilities."""
        self.shape = values.shape
        if self.float_sum:
            total = np.zeros(values.shape, np.float32) if total is None else total
            total += values * np.float32(weight)
            return total
        total = np.zeros(values.shape, np.uint8) if total is None else total
        return np.add(total, values.view(np.uint8), out=total)

    def hard_votes(self, members: tuple[str, ...], t: int) -> np.ndarray:
        """(Weighted) foreground count [H, W] of the runs x members maps of frame t."""
        total = None
        for run, weight in zip(self.runs, self.weights, strict=True):
            for exp_id in members:
                total = self._add(total, run.mask_frame(self.video, exp_id, t, self.shape), weight)
        assert total is not None
        return total

    def soft_mean(
        self, readers: Sequence[ProbsReader], members: tuple[str, ...], t: int
    ) -> np.ndarray:
        """Weighted mean probability [H, W] in [0, 1] of the runs x members maps of frame t."""
        total = None
        for reader, weight in zip(readers, self.weights, strict=True):
            for exp_id in members:
                probs = reader.frame(exp_id, t, self.shape).astype(np.float32) / np.float32(255)
                total = self._add(total, probs, weight)
        assert total is not None
        return total / np.float32(self.weights.sum() * len(members))

    def reference_mask(
        self, readers: Sequence[ProbsReader] | None, exp_id: str, t: int
    ) -> np.ndarray:
        """The reference run's (run 0's) own mask, or upstream's sigmoid rule with the compat switch."""
        run = self.runs[0]
        if self.config.compat_unpaired_sigmoid and run.value_domain == "probability":
            assert readers is not None
            stored = readers[0].frame(exp_id, t, self.shape)
            self.shape = stored.shape
            return stored >= 1  # quantize_probs: q >= 1 <=> float32 sigmoid(p) > 0.5
        mask = run.mask_frame(self.video, exp_id, t, self.shape)
        self.shape = mask.shape
        return mask


def _threshold(config: VoteConfig, members: tuple[str, ...]) -> float | Reference:
    """The rule of a group: min_votes for a full group, the unpaired rule for a lone pair member."""
    if config.grouping == "pairs" and len(members) == 1:
        assert config.unpaired is not None
        return config.unpaired
    return config.min_votes


def vote_video(runs: Sequence[Run], video: Video, config: VoteConfig, out: VideoWriter) -> None:
    """Vote every expression group of ``video`` frame by frame and write the result to ``out``."""
    weights = np.asarray(config.weights or [1.0] * len(runs), dtype=np.float32)
    # every map must have the frame size: a wrong first mask is blamed, not the next correct one
    state = _VideoVote(runs, video, config, weights, video.frame_size_if_present())
    readers = _open_readers(runs, video, config)
    try:
        for members in groups(video.exp_ids, config.grouping):
            rule = _threshold(config, members)
            for t in range(len(video.frames)):
                mask = _group_mask(state, readers, members, t, rule)
                data = encode_mask_png(mask)
                for exp_id in members:
                    out.write_png(exp_id, t, data, mask.shape)
    finally:
        for reader in readers or ():
            reader.__exit__(None, None, None)
    _write_carried(runs, video, config, out)


def _open_readers(
    runs: Sequence[Run], video: Video, config: VoteConfig
) -> list[ProbsReader] | None:
    if config.mode == "soft":
        return [run.open_probs(video) for run in runs]
    if config.compat_unpaired_sigmoid and runs[0].value_domain == "probability":
        return [runs[0].open_probs(video)]
    return None


def _group_mask(
    state: _VideoVote,
    readers: list[ProbsReader] | None,
    members: tuple[str, ...],
    t: int,
    rule: float | str,
) -> np.ndarray:
    if rule == "reference":
        return state.reference_mask(readers, members[0], t)
    if state.config.mode == "soft":
        assert readers is not None
        return state.soft_mean(readers, members, t) > state.config.soft_threshold
    return state.hard_votes(members, t) >= float(rule)


def _write_carried(runs: Sequence[Run], video: Video, config: VoteConfig, out: VideoWriter) -> None:
    """Copy the key-frame run's scores, so that the output's key frames are that run's."""
    if config.key_frames_from is None:
        return
    scores = runs[config.key_frames_from].scores(video)
    for exp_id in video.exp_ids:
        out.write_scores(exp_id, scores[exp_id])


def vote_record(runs: Sequence[Run], config: VoteConfig) -> RunRecord:
    """Provenance for run.json."""
    return RunRecord(
        producer="rvos_fusion.vote",
        value_domain="binary",
        has_scores=config.key_frames_from is not None,
        has_probs=False,
        inputs=tuple(run.input_record() for run in runs),
        config=asdict(config),
    )


@dataclass
class VoteStage(Stage):
    """A vote as a stage of rvos_core.runner (picklable: it runs in worker processes)."""

    runs: Sequence[Run]
    config: VoteConfig
    name: str = "vote"

    @property
    def inputs(self) -> Sequence[Path]:
        return [run.root for run in self.runs]

    @cached_property
    def record(self) -> RunRecord:
        return vote_record(self.runs, self.config)

    def check(self, dataset: Dataset, videos: Sequence[Video]) -> None:
        """Refuse settings that do not fit the runs, runs made for another split or from another
        version of its meta file, and a key-frame run whose key_frame.json does not fit the
        split's videos."""
        self.config.check(self.runs)
        for run in self.runs:
            run.check_dataset(dataset)
        if self.config.key_frames_from is not None:
            source = self.runs[self.config.key_frames_from]
            check_key_frames(source.key_frames(), dataset, source.root / "key_frame.json")

    def write_video(self, out: VideoWriter) -> None:
        vote_video(self.runs, out.video, self.config, out)


def run_vote(
    runs: Sequence[Run],
    dataset: Dataset,
    config: VoteConfig,
    out: Path,
    shard: tuple[int, int] = (0, 1),
    workers: int = 1,
) -> bool:
    """Vote the videos of ``shard`` not done yet into run ``out``; True when the run is complete.

    Refused before anything is written: an output that is (or is inside) an input run, and what
    ``VoteStage.check`` refuses.
    """
    stage = VoteStage(runs, config, name=f"vote {out.name}")
    return run_stage(stage, Target(out, dataset, shard, workers))

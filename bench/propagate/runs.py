"""Benchmark of propagating several runs together: the recipe's AOT runs (its propagation nodes
with propagator ``aot``: soc, mutr, referformer_ft, soc_mutr_referft for lsvos2023) over one
synthetic clip, one run at a time (today's per-run command: each run's expressions in one
``lockstep``, every frame encoded once per run) against all runs in one ``lockstep`` (``python -m
rvos_vos.propagate aot --run IN1 --out OUT1 --run IN2 --out OUT2 ...``: every frame encoded once
for all runs). Both in one process, same network (random weights), same clip, same key frames and
key masks, through the competition's views (``--views``: 6 = 3 scales x flip, 2 = one scale x flip);
the labels of both are checked to be equal bit for bit.

Key frames are drawn independently for every run and expression (the least sharing: a frame
between two runs' key frames is encoded in both passes), or with ``--shared-keys`` per expression
(the recipe's votes take their key frames from one run, and models often agree).

Reported per mode: wall and process CPU seconds, the encoder's share (wall and CPU seconds inside
``PropagationNet.encode``, number of view-batch encodings: 3 per frame with 6 views) and the rest
(CPU); then the factors. On a shared machine the CPU seconds are the figure to read. Each
expression of a run has its own key frame (seeded) and key mask (the clip's object, shifted).

    python bench/propagate/runs.py [--recipe lsvos2023] [--propagator aot] [--variant full]
        [--size 120x216] [--frames 6] [--expressions 2] [--views 6] [--shared-keys]
        [--threads 1] [--repeat 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from run import _size, synthetic_clip

from rvos_core.recipe import load_recipe
from rvos_vos.network import PropagationNet
from rvos_vos.procedure import MultiViewTracker, Track, lockstep
from rvos_vos.propagators import Propagator, load_propagator
from rvos_vos.views import ViewConfig, make_views

VIEWS = {6: ViewConfig(), 2: ViewConfig(scales=(1.0,))}


@dataclass
class EncoderClock:
    """Wraps ``net.encode``: wall and process CPU seconds spent inside and calls (one call = one
    view batch)."""

    net: PropagationNet
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    calls: int = 0
    encode: Callable[[torch.Tensor], list[torch.Tensor]] = field(init=False)

    def __post_init__(self) -> None:
        self.encode = self.net.encode
        self.net.encode = self  # type: ignore[method-assign]

    def __call__(self, image: torch.Tensor) -> list[torch.Tensor]:
        start, start_cpu = time.perf_counter(), time.process_time()
        maps = self.encode(image)
        self.seconds += time.perf_counter() - start
        self.cpu_seconds += time.process_time() - start_cpu
        self.calls += 1
        return maps


@dataclass(frozen=True, eq=False)
class Expression:
    """One expression of one run: its key frame and key label int64 [H, W]."""

    run: str
    key: int
    label: torch.Tensor


def expressions(
    runs: Sequence[str], count: int, per_run: int, key_mask: np.ndarray, shared_keys: bool
) -> list[Expression]:
    """Per run ``per_run`` expressions, each with the key mask shifted (seeded) and a seeded key
    frame: its own, or with ``shared_keys`` the one of the same expression in every run."""
    rng = np.random.default_rng(0)
    keys = [int(k) for k in rng.integers(0, count, per_run)]
    found = []
    for run in runs:
        for e in range(per_run):
            shift = int(rng.integers(-key_mask.shape[1] // 8, key_mask.shape[1] // 8))
            label = torch.from_numpy(np.roll(key_mask, shift, axis=1).astype(np.int64))
            key = keys[e] if shared_keys else int(rng.integers(0, count))
            found.append(Expression(run, key, label))
    return found


def propagate(
    net: PropagationNet,
    propagator: Propagator,
    views: ViewConfig,
    frames: Callable[[int], list[torch.Tensor]],
    group: Sequence[Expression],
    count: int,
) -> list[tuple[int, int, torch.Tensor]]:
    """``group`` in one lockstep: (index in ``group``, t, label int64 [H, W]), the procedure's order."""
    size = tuple(group[0].label.shape)
    tracks = [
        Track(
            MultiViewTracker(
                net=net,
                policy=propagator.policy(net.config, None, None),
                live_ids=propagator.live_ids(net.config, objects=1),
                views=views,
                size=size,
            ),
            e.key,
            e.label,
        )
        for e in group
    ]
    return list(lockstep(tracks, frames, count))


def timed_mode(
    clock: EncoderClock, work: Callable[[], dict[tuple[str, int, int], torch.Tensor]]
) -> tuple[dict[str, float], dict[tuple[str, int, int], torch.Tensor]]:
    """Run ``work``: its wall and CPU seconds, the encoder's, encoder calls, and its labels."""
    clock.seconds, clock.cpu_seconds, clock.calls = 0.0, 0.0, 0
    start, start_cpu = time.perf_counter(), time.process_time()
    labels = work()
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    figures = {
        "wall_s": wall,
        "cpu_s": cpu,
        "encoder_s": clock.seconds,
        "encoder_cpu_s": clock.cpu_seconds,
        "encodings": clock.calls,
    }
    return figures, labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipe", default="lsvos2023")
    parser.add_argument("--propagator", default="aot")
    parser.add_argument("--variant", default="full", help="full (Swin-L) or tiny")
    parser.add_argument("--size", type=_size, default=(120, 216), help="HxW of the clip")
    parser.add_argument("--frames", type=int, default=6, help="frames of the clip")
    parser.add_argument("--expressions", type=int, default=2, help="expressions of each run")
    parser.add_argument("--views", type=int, choices=sorted(VIEWS), default=6)
    parser.add_argument(
        "--shared-keys",
        action="store_true",
        help="expression e has one key frame in every run (as soc_mutr_referft takes soc's)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="passes of both modes, interleaved")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    recipe = load_recipe(args.recipe)
    runs = [n.name for n in recipe.of_kind("propagation") if n.producer == args.propagator]
    propagator = load_propagator(args.propagator)
    torch.manual_seed(0)
    net = propagator.build(propagator.config(args.variant)).eval()
    clock = EncoderClock(net)
    clip, key_mask = synthetic_clip(args.frames, *args.size)
    views = VIEWS[args.views]
    group = expressions(runs, args.frames, args.expressions, key_mask, args.shared_keys)

    def frames(t: int) -> list[torch.Tensor]:
        return make_views(clip[t], views)

    def run(subset: Sequence[Expression]) -> dict[tuple[str, int, int], torch.Tensor]:
        found = propagate(net, propagator, views, frames, subset, args.frames)
        return {(subset[i].run, group.index(subset[i]), t): label for i, t, label in found}

    def alone() -> dict[tuple[str, int, int], torch.Tensor]:
        return {k: v for name in runs for k, v in run([e for e in group if e.run == name]).items()}

    print(
        f"{args.propagator} {args.variant}, {len(runs)} runs of the recipe {recipe.name} "
        f"({', '.join(runs)}) x {args.expressions} expressions, clip {args.frames} frames "
        f"{args.size[0]}x{args.size[1]}, {len(views.scales) * views.per_scale} views, "
        f"{args.threads} thread(s); keys {[e.key for e in group]}"
    )
    print(
        f"{'mode':<22}{'wall s':>9}{'CPU s':>9}{'encoder s':>11}{'encoder CPU s':>15}"
        f"{'encodings':>11}{'rest CPU s':>12}"
    )
    with torch.inference_mode():
        for _ in range(args.repeat):
            results = {}
            for mode, work in (("one run at a time", alone), ("runs together", lambda: run(group))):
                figures, labels = timed_mode(clock, work)
                results[mode] = (figures, labels)
                rest = figures["cpu_s"] - figures["encoder_cpu_s"]
                print(
                    f"{mode:<22}{figures['wall_s']:>9.2f}{figures['cpu_s']:>9.2f}"
                    f"{figures['encoder_s']:>11.2f}{figures['encoder_cpu_s']:>15.2f}"
                    f"{figures['encodings']:>11d}{rest:>12.2f}"
                )
            (before, ours), (after, theirs) = results.values()
            assert ours.keys() == theirs.keys()
            assert all(torch.equal(ours[k], theirs[k]) for k in ours), "labels differ"
            print(
                f"factor: wall {before['wall_s'] / after['wall_s']:.2f}x, CPU "
                f"{before['cpu_s'] / after['cpu_s']:.2f}x, encoder CPU "
                f"{before['encoder_cpu_s'] / after['encoder_cpu_s']:.2f}x "
                f"({before['encodings']} -> {after['encodings']} encodings); labels identical"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark of AOT / DeAOT's 15x15 local attention (``rvos_vos.layers.local_attention``): its
two computations side by side on the map sizes the propagators meet, at inference and in training
(forward + backward).

* **tiled**: 8x8 query tiles, two batched matrix products against each tile's 22x22 keys, a
  gather and a scatter (what training and small maps run);
* **shifted**: one shifted product per window position (225 of them) over a zero-padded map
  (what inference runs on maps over ``TILED_MAX_POSITIONS`` positions; in training, reference:
  the windows unfolded once, 225 x the keys and values, as autograd's input).

Both print milliseconds per call (median of ``--repeat``) and the largest difference of their
outputs, so that the crossover ``TILED_MAX_POSITIONS`` can be checked on another machine.

    python bench/propagate/local_attention.py [--threads 1] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from rvos_vos import layers

# (label, batch, heads, channels per head, h, w): the tiny zoo's /16 map at 96x160, a 480p-ish
# map, the competition's 592x1040 view (37x65) with the full variants' 8 heads x 32 channels.
CASES = [
    ("tiny zoo 96x160 (6x10)", 1, 1, 64, 6, 10),
    ("tiny zoo 192x320 (12x20)", 1, 1, 64, 12, 20),
    ("full, 16x27", 1, 8, 32, 16, 27),
    ("full, 30x54", 1, 8, 32, 30, 54),
    ("full, 592x1040 (37x65)", 1, 8, 32, 37, 65),
]

Attention = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], tuple]


def tiled(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> tuple:
    return _attend(q, k, v, bias, layers._tiled_logits, layers._tiled_values)


def shifted(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> tuple:
    if torch.is_grad_enabled():
        return _attend(q, k, v, bias, _unfolded_logits, _unfolded_values)
    return _attend(q, k, v, bias, layers._shifted_logits, layers._shifted_values)


def _attend(q, k, v, bias, logits_of, values_of) -> tuple:
    h, w = q.shape[-2:]
    logits = (logits_of(q, k) + bias).masked_fill(~layers._inside(h, w, q.device), float("-inf"))
    attn = torch.softmax(logits, dim=2)
    return values_of(attn, v), attn


def _windows(x: torch.Tensor) -> torch.Tensor:
    """[N, heads, d, h, w] -> [N, heads, d, 225, h, w]: every position's window, unfolded."""
    n, heads, d, h, w = x.shape
    win = 2 * layers.MAX_DIS + 1
    padded = F.pad(x, (layers.MAX_DIS,) * 4).reshape(n * heads, d, h + win - 1, w + win - 1)
    return F.unfold(padded, kernel_size=win).view(n, heads, d, win * win, h, w)


def _unfolded_logits(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return (q.unsqueeze(3) * _windows(k)).sum(dim=2)


def _unfolded_values(attn: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (attn.unsqueeze(2) * _windows(v)).sum(dim=3)


def time_call(call: Callable[[], object], repeat: int) -> float:
    """Median milliseconds of ``call`` over ``repeat`` runs after one warm-up."""
    call()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def run_case(case: tuple, repeat: int) -> str:
    label, n, heads, d, h, w = case
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(n, heads, d, h, w, generator=generator) for _ in range(3))
    bias = torch.randn(n, heads, 225, h, w, generator=generator)
    with torch.no_grad():
        ours, ref = tiled(q, k, v, bias), shifted(q, k, v, bias)
        diff = max((a - b).abs().max().item() for a, b in zip(ours, ref, strict=True))
        infer = [time_call(lambda f=f: f(q, k, v, bias), repeat) for f in (tiled, shifted)]
    leaf = q.clone().requires_grad_()

    def step(f: Attention) -> None:
        out, attn = f(leaf, k, v, bias)
        (out.sum() + attn.sum()).backward()

    train = [time_call(lambda f=f: step(f), max(1, repeat // 2)) for f in (tiled, shifted)]
    chosen = "tiled" if h * w <= layers.TILED_MAX_POSITIONS else "shifted"
    return (
        f"| {label} | {n}x{heads}x{d} | {infer[0]:.2f} | {infer[1]:.2f} | {chosen} "
        f"| {train[0]:.1f} | {train[1]:.1f} | {diff:.1e} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"local attention, ms per call (median of {args.repeat}), {args.threads} thread(s)")
    print(
        "| map | N x heads x d | inference tiled | inference shifted | inference runs "
        "| training tiled | training unfolded | max diff |"
    )
    print("| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |")
    for case in CASES:
        print(run_case(case, args.repeat), flush=True)


if __name__ == "__main__":
    main()

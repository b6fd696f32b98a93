"""Unit tests by hand: the window attention, view sizes, the memory cap, configs."""

from __future__ import annotations

import pytest
import torch

from rvos_core.errors import ConfigError, InputError
from rvos_vos import layers
from rvos_vos.aot import AOTConfig, build
from rvos_vos.layers import MAX_DIS, local_attention
from rvos_vos.parity import upstream_trajectory
from rvos_vos.propagators import load_propagator
from rvos_vos.session import LongTermMemory, MemoryPolicy, Session
from rvos_vos.swin2d import SWIN_VARIANTS
from rvos_vos.views import ViewConfig, view_labels


def dense_local_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """Loop-by-loop reference: each position attends to the in-map part of its 15x15 window."""
    n, heads, _, h, w = q.shape
    win = 2 * MAX_DIS + 1
    out = torch.zeros(n, heads, v.shape[2], h, w, dtype=torch.float64)
    for y in range(h):
        for x in range(w):
            logits, values = [], []
            for dy in range(win):
                for dx in range(win):
                    yy, xx = y + dy - MAX_DIS, x + dx - MAX_DIS
                    if 0 <= yy < h and 0 <= xx < w:
                        dot = (q[..., y, x] * k[..., yy, xx]).sum(-1)
                        logits.append(dot + bias[:, :, dy * win + dx, y, x])
                        values.append(v[..., yy, xx])
            attn = torch.softmax(torch.stack(logits, -1).double(), dim=-1)
            out[..., y, x] = torch.einsum("nak,nakc->nac", attn, torch.stack(values, 2).double())
    return out


def test_local_attention_matches_a_dense_loop() -> None:
    gen = torch.Generator().manual_seed(0)
    n, heads, dk, dv, h, w = 2, 2, 3, 4, 5, 17  # wider than a window: borders on both sides
    q, k = (torch.randn(n, heads, dk, h, w, generator=gen) for _ in range(2))
    v = torch.randn(n, heads, dv, h, w, generator=gen)
    bias = torch.randn(n, heads, (2 * MAX_DIS + 1) ** 2, h, w, generator=gen)
    out, attn = local_attention(q, k, v, bias)
    torch.testing.assert_close(
        out.double(), dense_local_attention(q, k, v, bias), atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(attn.sum(2), torch.ones(n, heads, h, w))


def window_inputs(n: int, heads: int, h: int, w: int, seed: int = 0) -> list[torch.Tensor]:
    """q, k [N, heads, 3, h, w], v [N, heads, 4, h, w], bias [N, heads, 225, h, w]."""
    gen = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(n, heads, 3, h, w, generator=gen) for _ in range(2))
    v = torch.randn(n, heads, 4, h, w, generator=gen)
    return [q, k, v, torch.randn(n, heads, (2 * MAX_DIS + 1) ** 2, h, w, generator=gen)]


def test_local_attention_gradients_match_a_dense_loop() -> None:
    # 13 x 17: two rows and three columns of 8x8 tiles, the last ones past the map
    inputs = [x.requires_grad_() for x in window_inputs(1, 2, 13, 17)]
    out, _ = local_attention(*inputs)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    ours = torch.autograd.grad((out * weights).sum(), inputs)
    reference = dense_local_attention(*inputs)
    theirs = torch.autograd.grad((reference * weights.double()).sum(), inputs)
    torch.testing.assert_close(out.double(), reference, atol=1e-5, rtol=1e-5)
    for mine, ref in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine.double(), ref.double(), atol=1e-5, rtol=1e-5)


def test_local_attention_large_maps_shift_and_agree_with_the_tiles() -> None:
    h, w = 19, 31
    assert h * w > layers.TILED_MAX_POSITIONS  # inference takes the shifted products
    inputs = window_inputs(2, 2, h, w)
    with torch.no_grad():
        shifted = local_attention(*inputs)
    with torch.enable_grad():  # the tiles: what autograd runs
        tiled = local_attention(*inputs)
    for a, b in zip(shifted, tiled, strict=True):
        torch.testing.assert_close(a, b.detach(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("size", "views"),
    [
        # 720p: long side capped at 1040 (x 0.8125), then x scale, sides rounded to 16 (half to even)
        ((720, 1280), [(464, 832), (592, 1040), (704, 1248)]),
        ((1280, 720), [(832, 464), (1040, 592), (1248, 704)]),
        # no cap: 64x96 -> int(51.2)=51 -> 48, int(76.8)=76 -> 80; 1.0 unchanged; 76 -> 80, 115 -> 112
        ((64, 96), [(48, 80), (64, 96), (80, 112)]),
    ],
)
def test_view_sizes(size: tuple[int, int], views: list[tuple[int, int]]) -> None:
    assert ViewConfig().sizes(*size) == views


def test_view_labels_mirror_before_resizing() -> None:
    label = torch.tensor([[0, 0, 1], [0, 2, 1]])
    # nearest (floor) 2x3 -> 4x2 picks source columns 0 and 1; the mirror picks 2 and 1.
    labels = view_labels(label, (4, 2), flip=True)
    assert labels[0, 0].tolist() == [[0, 0], [0, 0], [0, 2], [0, 2]]
    assert labels[1, 0].tolist() == [[1, 0], [1, 0], [1, 2], [1, 2]]


def entries(frame: int) -> list[tuple[torch.Tensor, ...]]:
    """One layer, a key and a value tensor of 2 tokens filled with the frame number."""
    return [(torch.full((2, 1, 3), float(frame)), torch.full((2, 1, 5), float(frame)))]


def test_long_term_memory_order_and_drop() -> None:
    memory = LongTermMemory(entries(0), pinned=True)
    for frame in (1, 2, 3):
        memory.add(entries(frame), pinned=False)
    assert memory.layers[0][0][::2, 0, 0].tolist() == [3, 2, 1, 0]  # newest first
    assert memory.drop_oldest_unpinned()
    assert memory.layers[0][1][::2, 0, 0].tolist() == [3, 2, 0]
    assert memory.pinned == [False, False, True]


def test_long_term_memory_never_drops_references() -> None:
    memory = LongTermMemory(entries(0), pinned=True)
    memory.add(entries(1), pinned=True)
    assert not memory.drop_oldest_unpinned()
    assert memory.frames == 2


def tiny_session(policy: MemoryPolicy) -> tuple[Session, list[torch.Tensor], torch.Tensor]:
    """A session of the tiny net, the encoder maps of a random image and a label [1, 1, H, W]."""
    torch.manual_seed(0)
    net = build("tiny")
    with torch.no_grad():
        features = net.encode(torch.randn(1, 3, 64, 96))
    label = torch.zeros(1, 1, 64, 96, dtype=torch.long)
    label[..., 16:40, 30:60] = 1
    return Session(net=net, policy=policy, live_ids=1), features, label


def test_memory_cap_keeps_references_and_the_newest_frames() -> None:
    session, features, label = tiny_session(MemoryPolicy(long_term_gap=1, max_long_term=3))
    with torch.no_grad():
        session.add_reference(features, label)
        for _ in range(3):  # gap 1: every committed frame is an entry
            session.step(features)
            session.commit(label)
        assert session.long.pinned == [False, False, True]
        session.add_reference(features, label)  # the backward pass re-adds the key frame
        assert session.long.pinned == [True, False, True]
        session.step(features)
        session.commit(label)
        assert session.long.pinned == [False, True, True]
        assert session.long.layers[0][0].shape[0] == 3 * session.long.tokens


def test_memory_grows_without_a_cap() -> None:
    session, features, label = tiny_session(MemoryPolicy(long_term_gap=2))
    with torch.no_grad():
        session.add_reference(features, label)
        for _ in range(6):
            session.step(features)
            session.commit(label)
    assert session.long_term_frames == 1 + 6 // 2


def test_live_ids_mask_the_other_identities() -> None:
    session, features, label = tiny_session(MemoryPolicy())
    with torch.no_grad():
        session.add_reference(features, label)
        logits = session.step(features)
    assert (logits[:, 2:] == -1e10).all() and (logits[:, :2] > -1e9).all()


def test_memory_policy_checks() -> None:
    with pytest.raises(ConfigError):
        MemoryPolicy(long_term_gap=0)
    with pytest.raises(ConfigError):
        MemoryPolicy(max_long_term=1)


def test_config_checks() -> None:
    with pytest.raises(ConfigError, match="encoder_dims"):
        AOTConfig(swin=SWIN_VARIANTS["tiny"])
    with pytest.raises(ConfigError, match="MODEL_VOS"):
        AOTConfig.from_upstream({"MODEL_VOS": "deaot", "swin": {}, "MODEL_ENCODER_DIM": []})
    with pytest.raises(ConfigError, match="unknown variant"):
        load_propagator("aot").config("huge")


def test_config_file_of_the_wrong_propagator(tmp_path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"MODEL_VOS": "deaot"}')
    with pytest.raises(InputError, match="not a valid aot config") as error:
        load_propagator("aot").config(path=path)
    assert error.value.path == path


def test_upstream_trajectory_ends_at_the_first_differing_label() -> None:
    upstream = torch.zeros(4, 2, 3, dtype=torch.uint8)
    ours = {t: torch.zeros(2, 3, dtype=torch.long) for t in (2, 3, 1, 0)}  # prediction order
    assert upstream_trajectory(ours, upstream) == [2, 3, 1, 0]
    ours[3] = ours[3].clone()
    ours[3][1, 2] = 1  # one pixel decided the other way: later frames saw another memory
    assert upstream_trajectory(ours, upstream) == [2, 3]


def test_local_attention_training_path_equals_inference_path() -> None:
    """With autograd (training) the windows are unfolded; without (inference) each window position
    is one shifted product: the same attention and output to float32 rounding."""
    g = torch.Generator().manual_seed(0)
    q, k = (torch.randn(2, 2, 4, 9, 11, generator=g) for _ in range(2))
    v = torch.randn(2, 2, 3, 9, 11, generator=g)
    bias = torch.randn(2, 2, 225, 9, 11, generator=g)
    with torch.no_grad():
        out_loop, attn_loop = local_attention(q, k, v, bias)
    out, attn = local_attention(q.requires_grad_(), k, v, bias)
    assert torch.allclose(out, out_loop, atol=1e-6) and torch.allclose(attn, attn_loop, atol=1e-6)
    out.sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()

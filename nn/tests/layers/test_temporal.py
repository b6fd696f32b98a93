"""The VITA-like temporal query module: shifted-window mask by hand, window isolation, and parity
with SOC's ``vita`` (full attention, sentence-feature content) and MUTR's ``mti`` (windows of 4
with time padding and the shifted layer, learned ``query_feat``) fed with the fixtures' captured
decoder states."""

from __future__ import annotations

import pytest
import torch
from layers_testlib import close, load, sub_state_dict

from rvos_nn.layers import TemporalQueryModule, shifted_window_mask

INTERMEDIATE = {"rtol": 1e-4, "atol": 1e-5}


def _blocks(window_masks: list[list[list[int]]], queries: int) -> torch.Tensor:
    """Per-window frame x frame 0/1 matrices -> the [Nw, W * fQ, W * fQ] additive mask."""
    ones = torch.ones(queries, queries)
    return torch.stack(
        [torch.kron(torch.tensor(m, dtype=torch.float32), ones) for m in window_masks]
    )


def test_shifted_window_mask_with_padding_by_hand() -> None:
    # T = 5 padded to 8, W = 4: rolled by 2 the padding is frames 0, 1 (window 0) and 7 (window 1).
    pad = torch.tensor([[False] * 5 + [True] * 3])
    w0 = [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]]
    w1 = [[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1], [1, 1, 1, 1]]
    expected = _blocks([w0, w1], queries=2) * -1000.0
    assert torch.equal(shifted_window_mask(pad, window=4, nheads=1, queries=2), expected)


def test_shifted_window_mask_without_padding_by_hand() -> None:
    # Only the wrap-around pairs of the first window are masked; heads repeat the window's mask.
    pad = torch.zeros(1, 8, dtype=torch.bool)
    w0 = [[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]]
    w1 = [[0] * 4] * 4
    per_window = _blocks([w0, w1], queries=1) * -1000.0
    expected = per_window.repeat_interleave(3, dim=0)  # [Nw * heads, ...], window-major
    assert torch.equal(shifted_window_mask(pad, window=4, nheads=3, queries=1), expected)


def test_window_encoder_layer_keeps_windows_apart() -> None:
    torch.manual_seed(0)
    module = TemporalQueryModule(
        d_model=16, num_frame_queries=2, num_queries=3, nheads=2, dim_feedforward=8,
        enc_layers=1, dec_layers=1, window_size=4, learned_query_feat=True,
    ).eval()  # fmt: skip
    x = torch.randn(8, 2, 1, 16)
    changed = x.clone()
    changed[5] += 1.0
    with torch.no_grad():
        a, b = module.encode(x), module.encode(changed)
    assert torch.equal(a[:4], b[:4])
    assert not torch.allclose(a[4:], b[4:])


def test_content_must_match_query_feat() -> None:
    kwargs = {
        "d_model": 8, "num_frame_queries": 2, "num_queries": 2, "nheads": 2,
        "dim_feedforward": 8, "enc_layers": 1, "dec_layers": 1,
    }  # fmt: skip
    frames = torch.randn(3, 1, 2, 8)
    with pytest.raises(ValueError, match="content"):
        TemporalQueryModule(**kwargs)(frames)
    with pytest.raises(ValueError, match="content"):
        TemporalQueryModule(**kwargs, learned_query_feat=True)(frames, torch.randn(1, 8))
    with pytest.raises(ValueError, match="frame queries"):
        TemporalQueryModule(**kwargs)(torch.randn(3, 1, 5, 8), torch.randn(1, 8))


def _layer_count(state_dict: dict[str, torch.Tensor], prefix: str) -> int:
    return len({k[len(prefix) :].split(".")[0] for k in state_dict if k.startswith(prefix)})


@pytest.mark.parity
def test_soc_vita_matches_upstream() -> None:
    config = load("soc", "config.json")["build"]["model_config"]["VITA"]
    inter = load("soc", "intermediates.pt")
    module = TemporalQueryModule(
        d_model=config["input_dim"],
        num_frame_queries=config["num_frame_queries"],
        num_queries=config["num_queries"],
        nheads=config["nheads"],
        dim_feedforward=config["dim_feedforward"],
        enc_layers=config["enc_layers"],
        dec_layers=config["dec_layers"],
        window_size=config["window_size"],
    )
    module.load_state_dict(sub_state_dict(load("soc", "state_dict.pt"), "vita."))
    hs = inter["transformer"]["hs"][-1]  # [T, Q, C], batch 1
    with torch.no_grad():
        out = module.eval()(hs[:, None], inter["txt_proj"][1])
    close(out, inter["vita"][0, :], **INTERMEDIATE)


@pytest.mark.parity
def test_mutr_mti_matches_upstream() -> None:
    config = load("mutr", "config.json")
    args = config["build"]["model_args"]
    hard_coded = config["tiny_vs_full [tiny, full]"]
    window, enc, dec, heads = (
        int(v) for v in hard_coded["MTI window_size / enc_layers / dec_layers / nheads (hard-coded)"][0].split("/")
    )  # fmt: skip
    sd = sub_state_dict(load("mutr", "state_dict.pt"), "mti.")
    assert (_layer_count(sd, "enc_ffn."), _layer_count(sd, "transformer_ffn_layers.")) == (enc, dec)
    inter = load("mutr", "intermediates.pt")
    hs = inter["transformer"]["hs"][-1]
    module = TemporalQueryModule(
        d_model=args["hidden_dim"],
        num_frame_queries=args["num_queries"],
        num_queries=args["num_queries"],
        nheads=heads,
        dim_feedforward=config["build"]["constructor_overrides"]["MTI.dim_feedforward"],
        enc_layers=enc,
        dec_layers=dec,
        window_size=window,
        learned_query_feat=True,
    )
    module.load_state_dict(sd)
    with torch.no_grad():
        out = module.eval()(hs[:, None])
    close(out, inter["mti"][0, :], **INTERMEDIATE)

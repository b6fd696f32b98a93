"""Helpers of the shared-layer tests: parity fixture files and sub-modules built from them."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rvos_core.testing import parity_dir
from rvos_nn.layers import MLP, DeformableTransformer


def load(name: str, file: str) -> Any:
    """A ``.pt`` (weights_only) or ``.json`` file of the parity fixture ``name``."""
    path: Path = parity_dir(name) / file
    if path.suffix == ".json":
        return json.loads(path.read_text())
    return torch.load(path, weights_only=True)


@cache
def referformer_files() -> dict[str, Any]:
    return {
        f: load("referformer", f"{f}.pt")
        for f in ("state_dict", "inputs", "intermediates", "outputs")
    }


def referformer_args() -> dict[str, Any]:
    return load("referformer", "config.json")["build"]["model_args"]


def sub_state_dict(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}


def referformer_transformer(args: dict[str, Any]) -> DeformableTransformer:
    """The fixture's deformable transformer with its box heads for iterative refinement."""
    d = args["hidden_dim"]
    transformer = DeformableTransformer(
        d_model=d,
        nhead=args["nheads"],
        num_encoder_layers=args["enc_layers"],
        num_decoder_layers=args["dec_layers"],
        dim_feedforward=args["dim_feedforward"],
        dropout=args["dropout"],
        num_feature_levels=args["num_feature_levels"],
        dec_n_points=args["dec_n_points"],
        enc_n_points=args["enc_n_points"],
    )
    transformer.decoder.bbox_embed = nn.ModuleList(
        MLP(input_dim=d, hidden_dim=d, output_dim=4, num_layers=3)
        for _ in range(args["dec_layers"])
    )
    return transformer


def close(actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float) -> None:
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)

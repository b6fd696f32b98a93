"""The small multi-layer perceptron of DETR (box heads, dynamic-parameter controllers)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class MLP(nn.Module):
    """``num_layers`` Linear layers (``layers.i``) with ReLU between them, none after the last."""

    def __init__(self, *, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int):
        super().__init__()
        sizes_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        sizes_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(
            nn.Linear(i, o) for i, o in zip(sizes_in, sizes_out, strict=True)
        )

    def forward(self, x: Tensor) -> Tensor:
        """x: [..., input_dim] -> [..., output_dim]."""
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == last else F.relu(layer(x))
        return x

"""Box of a decoder layer from its reference, by hand."""

from __future__ import annotations

import torch

from rvos_nn.layers.video_text import boxes_from_reference


def test_two_d_reference_moves_the_centre_only() -> None:
    delta = torch.tensor([[0.0, 1.0, 2.0, -1.0]])
    reference = torch.tensor([[0.5, 0.25]])  # inverse sigmoid: 0, log(1/3)
    expected = torch.tensor([0.0, 1.0 + torch.log(torch.tensor(1 / 3)).item(), 2.0, -1.0]).sigmoid()
    torch.testing.assert_close(boxes_from_reference(delta, reference)[0], expected)


def test_four_d_reference_shifts_every_coordinate() -> None:
    delta = torch.tensor([[1.0, -1.0, 0.5, 0.0]])
    reference = torch.full((1, 4), 0.5)
    torch.testing.assert_close(boxes_from_reference(delta, reference), delta.sigmoid())

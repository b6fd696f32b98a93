"""The procedure on a CUDA device: fp32 gives the upstream labels; amp (fp16 autocast, as the
competition ran) agrees with them on nearly every pixel (the fixtures are fp32: no fp16 parity)."""

from __future__ import annotations

import pytest
import torch
from vos_testlib import MARGIN, load_pt, tiny_net

from rvos_core.testing import parity_dir
from rvos_nn.precision import inference_context
from rvos_vos.parity import fixture_views, free_running_labels, stored_frame, upstream_trajectory
from rvos_vos.propagators import load_propagator

pytestmark = [pytest.mark.gpu, pytest.mark.parity]


def run(name: str, precision: str) -> dict[int, torch.Tensor]:
    """The free-running procedure on the fixture clip, on the GPU: t -> label."""
    device = torch.device("cuda")
    fixture = parity_dir(name)
    trace = load_pt(name, "trace_bidirectional.pt")
    views = fixture_views(fixture, trace)

    def frame(t: int) -> list[torch.Tensor]:
        return [v.to(device) for v in stored_frame(fixture, t, views)]

    net = tiny_net(name).to(device)
    with inference_context(device, precision):
        labels = free_running_labels(fixture, trace, net, load_propagator(name), frame)
    return {t: label.cpu() for t, label in labels.items()}


@pytest.mark.parametrize("name", ["aot", "deaot"])
def test_fp32_on_gpu(name: str) -> None:
    """Upstream's labels where the margin is sure, on upstream's trajectory (the GPU sums in
    another order and may decide a near tie the other way: see upstream_trajectory)."""
    trace = load_pt(name, "trace_bidirectional.pt")
    steps = {s["frame"]: s for p in trace["passes"] for s in p["steps"]}
    labels = run(name, "fp32")
    for t in upstream_trajectory(labels, trace["final"]["label"]):
        top = steps[t]["avg_prob"].topk(2, dim=0).values
        sure = top[0] - top[1] > MARGIN
        assert torch.equal(labels[t][sure], trace["final"]["label"][t].long()[sure])


@pytest.mark.parametrize("name", ["aot", "deaot"])
def test_amp_on_gpu(name: str) -> None:
    final = load_pt(name, "trace_bidirectional.pt")["final"]["label"].long()
    labels = run(name, "fp16")
    agree = sum((labels[t] == final[t]).float().mean().item() for t in labels) / len(labels)
    assert agree > 0.95

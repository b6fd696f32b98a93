"""The procedure on a CUDA device: fp32 gives the upstream labels; amp (fp16 autocast, as the
competition ran) agrees with them on nearly every pixel (the fixtures are fp32: no fp16 parity)."""

from __future__ import annotations

import pytest
import torch
from vos_testlib import MARGIN, load_pt, tiny_net

from rvos_core.precision import inference_context
from rvos_core.testing import parity_dir
from rvos_vos.parity import fixture_views, stored_frame
from rvos_vos.procedure import MultiViewTracker, bidirectional
from rvos_vos.propagators import PROPAGATORS

pytestmark = [pytest.mark.gpu, pytest.mark.parity]


def run(name: str, precision: str) -> dict[int, torch.Tensor]:
    """The free-running procedure on the fixture clip, on the GPU: t -> label."""
    device = torch.device("cuda")
    fixture = parity_dir(name)
    trace = load_pt(name, "trace_bidirectional.pt")
    net = tiny_net(name).to(device)
    propagator = PROPAGATORS[name]
    views = fixture_views(fixture, trace)
    tracker = MultiViewTracker(
        net=net,
        policy=propagator.policy(net.config, trace["long_term_mem_gap"]),
        live_ids=propagator.live_ids(net.config, objects=1),
        views=views,
        size=tuple(trace["key_mask"].shape),
    )

    def frame(t: int) -> list[torch.Tensor]:
        return [v.to(device) for v in stored_frame(fixture, t, views)]

    key = trace["key_mask"].long().to(device)
    count = trace["final"]["label"].shape[0]
    with inference_context(device, precision):
        return {
            t: label.cpu()
            for t, label in bidirectional(tracker, frame, trace["key_frame"], key, count)
        }


@pytest.mark.parametrize("name", ["aot", "deaot"])
def test_fp32_on_gpu(name: str) -> None:
    trace = load_pt(name, "trace_bidirectional.pt")
    steps = {s["frame"]: s for p in trace["passes"] for s in p["steps"]}
    for t, label in run(name, "fp32").items():
        top = steps[t]["avg_prob"].topk(2, dim=0).values
        sure = top[0] - top[1] > MARGIN
        assert torch.equal(label[sure], trace["final"]["label"][t].long()[sure])


@pytest.mark.parametrize("name", ["aot", "deaot"])
def test_amp_on_gpu(name: str) -> None:
    final = load_pt(name, "trace_bidirectional.pt")["final"]["label"].long()
    labels = run(name, "fp16")
    agree = sum((labels[t] == final[t]).float().mean().item() for t in labels) / len(labels)
    assert agree > 0.95

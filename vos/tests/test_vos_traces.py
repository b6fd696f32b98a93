"""Step-by-step parity with the upstream engines and evaluator (fixtures ``aot`` and ``deaot``).

Per-step tensors are checked teacher-forced (the stored labels go into the memory), as the fixture
READMEs recommend; labels are compared exactly where the stored averaged probability has a
top-1 - top-2 margin above 1e-4. Tolerances are the READMEs'.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor
from vos_testlib import fixture_config, load_pt, tiny_net

from rvos_vos.procedure import MultiViewTracker, bidirectional
from rvos_vos.propagators import PROPAGATORS
from rvos_vos.session import Session
from rvos_vos.views import ViewConfig, view_labels

pytestmark = pytest.mark.parity
NAMES = ("aot", "deaot")
LOGITS = {"atol": 1e-4, "rtol": 1e-4}
FEATURES = {"atol": 1e-4, "rtol": 1e-4}
PROBS = {"atol": 2e-5, "rtol": 0.0}
MARGIN = 1e-4


def margin(probs: Tensor) -> Tensor:
    """top-1 - top-2 over the id axis of [ids, H, W]."""
    top = probs.topk(2, dim=0).values
    return top[0] - top[1]


def assert_labels(label: Tensor, expected: Tensor, reference_probs: Tensor) -> None:
    sure = margin(reference_probs) > MARGIN
    assert torch.equal(label[sure], expected.long()[sure])


def live(trace: dict) -> int:
    """Ids the engine decodes (its obj_nums): 10 for the competition AOT, 1 for DeAOT."""
    return trace["passes"][0]["reference"]["engine_state_after"]["obj_nums"][0]


def assert_state(session: Session, state: dict, view: int) -> None:
    assert session.frame_step == state["frame_step"]
    assert session.last_mem_step == state["last_mem_step"]
    assert session.long_term_frames == state["long_term_frames"]
    assert session.long.layers[0][0].shape[0] == state["long_term_tokens_per_view"][view]


def fixture_views(name: str, trace: dict) -> ViewConfig:
    """The view configuration of a trace, from the fixture's config."""
    procedure = fixture_config(name)["procedure"]
    scales = tuple(sorted({v["scale"] for v in trace["views"]}))
    flip = any(v["flip"] for v in trace["views"])
    return ViewConfig(scales=scales, flip=flip, max_size=procedure["TEST_MAX_SIZE"])


def stored_views(name: str, t: int, views: ViewConfig) -> list[Tensor]:
    """The normalised views the upstream engines received for frame t (clip.pt)."""
    stored = load_pt(name, "clip.pt")["views_normalized"]
    out = []
    for scale in views.scales:
        image = next(v for k, v in stored.items() if float(k) == scale)[t]
        out.append(torch.stack([image, image.flip(-1)]) if views.flip else image[None])
    return out


@pytest.mark.parametrize("name", NAMES)
def test_single_view_teacher_forced(name: str) -> None:
    trace = load_pt(name, "trace_single_view.pt")
    propagator = PROPAGATORS[name]
    net = tiny_net(name)
    session = Session(net, propagator.policy(net.config, trace["long_term_mem_gap"]), live(trace))
    views = fixture_views(name, trace)
    step_pass = trace["passes"][0]
    reference = step_pass["reference"]
    with torch.no_grad():
        session.add_reference(
            stored_views(name, reference["frame"], views)[0], reference["mask"].long()[None, None]
        )
        for ours, ref in zip(session.features, reference["encoder_features"], strict=True):
            torch.testing.assert_close(ours[0], ref, **FEATURES)
        for ours, ref in zip(session.embs, reference["lstt_embs"], strict=True):
            torch.testing.assert_close(ours[:, 0], ref, **FEATURES)
        assert_state(session, reference["engine_state_after"], 0)
        ids = live(trace) + 1
        for step in step_pass["steps"]:
            lowres = session.step(stored_views(name, step["frame"], views)[0])
            for ours, ref in zip(session.features, step["encoder_features"], strict=True):
                torch.testing.assert_close(ours[0], ref, **FEATURES)
            for ours, ref in zip(session.embs, step["lstt_embs"], strict=True):
                torch.testing.assert_close(ours[:, 0], ref, **FEATURES)
            torch.testing.assert_close(lowres[0, :ids], step["lowres_logits"][:ids], **LOGITS)
            logits = torch.nn.functional.interpolate(
                lowres, size=step["logits"].shape[-2:], mode="bilinear", align_corners=False
            )[0]
            torch.testing.assert_close(logits[:ids], step["logits"][:ids], **LOGITS)
            probs = torch.softmax(logits, dim=0)
            torch.testing.assert_close(probs, step["prob"], **PROBS)
            assert_labels(probs.argmax(0), step["label"], step["prob"])
            session.commit(step["fed_back_label"].long()[None, None])
            assert_state(session, step["engine_state_after"], 0)


BIDIRECTIONAL = ("trace_bidirectional.pt", "trace_bidirectional_gap5.pt")


def tracker(name: str, trace: dict) -> MultiViewTracker:
    propagator = PROPAGATORS[name]
    net = tiny_net(name)
    views = fixture_views(name, trace)
    size = tuple(trace["key_mask"].shape)
    assert [list(s) for s in views.sizes(*size) for _ in range(views.per_scale)] == [
        v["size"] for v in trace["views"]
    ]
    return MultiViewTracker(
        net, propagator.policy(net.config, trace["long_term_mem_gap"]), live(trace), views, size
    )


def per_view_labels(trk: MultiViewTracker, label: Tensor) -> list[Tensor]:
    """What each view's session receives for a label at the frame size, in the trace's view order."""
    return [m[0] for size in trk.view_sizes for m in view_labels(label, size, trk.views.flip)]


def check_states(trk: MultiViewTracker, state: dict) -> None:
    for i, session in enumerate(trk.sessions):
        assert_state(session, state, i * trk.views.per_scale)


def check_step(trk: MultiViewTracker, step: dict, probs: Tensor, ids: int) -> None:
    if "avg_prob" in step:
        torch.testing.assert_close(probs, step["avg_prob"], **PROBS)
        assert_labels(probs.argmax(0), step["label"], step["avg_prob"])
    if "lowres_logits_per_view" in step:
        ours = [view for scale in trk.last_lowres for view in scale]
        for mine, ref in zip(ours, step["lowres_logits_per_view"], strict=True):
            torch.testing.assert_close(mine[:ids], ref[:ids], **LOGITS)


@pytest.mark.parametrize("file", BIDIRECTIONAL)
@pytest.mark.parametrize("name", NAMES)
def test_bidirectional_teacher_forced(name: str, file: str) -> None:
    trace = load_pt(name, file)
    trk = tracker(name, trace)
    key_label = trace["key_mask"].long()
    ids = live(trace) + 1
    with torch.no_grad():
        for step_pass in trace["passes"]:
            reference = step_pass["reference"]
            assert reference["frame"] == trace["key_frame"]
            trk.add_reference(stored_views(name, reference["frame"], trk.views), key_label)
            for ours, ref in zip(
                per_view_labels(trk, key_label), reference["mask_per_view"], strict=True
            ):
                assert torch.equal(ours, ref.long())
            check_states(trk, reference["engine_state_after"])
            for step in step_pass["steps"]:
                probs = trk.predict(stored_views(name, step["frame"], trk.views))
                check_step(trk, step, probs, ids)
                trk.commit(step["label"].long())
                for ours, ref in zip(
                    per_view_labels(trk, step["label"].long()),
                    step["fed_back_label_per_view"],
                    strict=True,
                ):
                    assert torch.equal(ours, ref.long())
                check_states(trk, step["engine_state_after"])


@pytest.mark.parametrize("file", BIDIRECTIONAL)
@pytest.mark.parametrize("name", NAMES)
def test_bidirectional_free_running(name: str, file: str) -> None:
    """The procedure on its own (labels fed back from our predictions) gives the stored labels."""
    trace = load_pt(name, file)
    trk = tracker(name, trace)
    final = trace["final"]["label"]
    steps = {s["frame"]: s for p in trace["passes"] for s in p["steps"]}
    seen = []
    with torch.no_grad():
        for t, label in bidirectional(
            trk,
            lambda t: stored_views(name, t, trk.views),
            trace["key_frame"],
            trace["key_mask"].long(),
            final.shape[0],
        ):
            seen.append(t)
            step = steps[t]
            if "avg_prob" in step:
                assert_labels(label, final[t], step["avg_prob"])
            elif step["min_top2_margin"] > MARGIN:
                assert torch.equal(label, final[t].long())
    sources = trace["final"]["source"]
    assert seen == [
        t for s in ("Forward", "Backward") for t in _ordered(sources, s, trace["key_frame"])
    ]


def _ordered(sources: list[str], stage: str, key: int) -> list[int]:
    frames = [t for t, s in enumerate(sources) if s == stage]
    return sorted(frames, reverse=stage == "Backward")

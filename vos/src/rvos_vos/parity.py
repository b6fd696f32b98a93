"""Parity handlers of the ``swin2d``, ``aot`` and ``deaot`` fixtures (``python -m rvos_nn.parity``
and the unit tests).

Everything is derived from the fixture files (layout in each fixture's README): the network is
built from config.json and strict-loaded from state_dict.pt; the full-size key layout is compared
with keys_full.json on the meta device. The engine traces are replayed teacher-forced (the stored
labels go into the memory) and compared step by step: encoder maps, layer outputs, logits,
probabilities, memory schedule; labels are compared exactly where the stored averaged probability
has a top-1 - top-2 margin above 1e-4. The procedure is also run free (its own labels fed back),
its labels compared while it stays on upstream's trajectory (``upstream_trajectory``).
Tolerances are the READMEs'.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rvos_nn.checkpoint import load_state_dict_strict
from rvos_nn.parity import ParityCheck
from rvos_vos.network import PropagationNet
from rvos_vos.procedure import FrameViews, MultiViewTracker, bidirectional
from rvos_vos.propagators import Propagator, load_propagator
from rvos_vos.session import Session
from rvos_vos.swin2d import SwinConfig, SwinTransformer2D
from rvos_vos.views import ViewConfig, view_labels

ENCODER = {"atol": 1e-5, "rtol": 1e-5}  # swin2d README
FEATURES = {"atol": 1e-4, "rtol": 1e-4}  # aot / deaot READMEs
LOGITS = {"atol": 1e-4, "rtol": 1e-4}
PROBS = {"atol": 2e-5, "rtol": 0.0}
MARGIN = 1e-4
BIDIRECTIONAL = ("trace_bidirectional.pt", "trace_bidirectional_gap5.pt")


def _load(fixture: Path, file: str) -> Any:
    return torch.load(fixture / file, weights_only=True)


def _json(fixture: Path, file: str) -> dict[str, Any]:
    return json.loads((fixture / file).read_text())


# ---------------------------------------------------------------------------------------------
# swin2d


def swin2d_parity(fixture: Path, check: ParityCheck) -> None:
    """The encoder alone: outputs of every input, patch embedding and block outputs."""
    config = _json(fixture, "config.json")
    model = SwinTransformer2D(config=SwinConfig.from_upstream(config["tiny"]))
    state = _load(fixture, "state_dict.pt")
    load_state_dict_strict(model, state, source=str(fixture))
    model.eval()
    check.equal("state dict keys", len(model.state_dict()), config["num_keys"])
    buffers = sorted(k for k, v in model.state_dict().items() if not v.is_floating_point())
    check.equal("buffers", buffers, sorted(config["buffers"]))
    io = _load(fixture, "io.pt")
    with torch.no_grad():
        for name, image in io["inputs"].items():
            outs = model(image)
            expected = io["outputs"][name]
            # upstream returns the last stage map twice; the module returns each stage once
            check.equal(f"{name} stage count", len(outs), len(expected) - 1)
            for i, (ours, ref) in enumerate(zip(outs, expected, strict=False)):
                check.close(f"{name} stage {i}", ours, ref, **ENCODER)
        recorded = _record_blocks(model)
        frame0 = next(name for name in io["inputs"] if name.startswith("frame0"))
        model(io["inputs"][frame0])  # the intermediates are recorded for frame 0 (README)
    intermediates = io["frame0_intermediates"]
    patch = recorded.pop("patch_embed").permute(0, 3, 1, 2)
    check.close("frame0 patch_embed", patch, intermediates["patch_embed"], **ENCODER)
    check.equal("frame0 blocks", sorted(recorded), sorted(intermediates["block_outputs"]))
    for key, ref in intermediates["block_outputs"].items():
        check.close(f"frame0 {key}", recorded[key].flatten(1, 2), ref, **ENCODER)


def _record_blocks(model: SwinTransformer2D) -> dict[str, Tensor]:
    seen: dict[str, Tensor] = {}

    def keep(key: str) -> Callable[..., None]:
        return lambda _module, _inputs, out: seen.__setitem__(key, out)

    model.patch_embed.register_forward_hook(keep("patch_embed"))
    for i, stage in enumerate(model.layers):
        for j, block in enumerate(stage.blocks):
            block.register_forward_hook(keep(f"layers.{i}.blocks.{j}"))
    return seen


# ---------------------------------------------------------------------------------------------
# aot / deaot


def fixture_network(name: str, fixture: Path) -> PropagationNet:
    """The fixture's tiny network (config.json: upstream names + the tiny Swin), strict-loaded."""
    config = _json(fixture, "config.json")
    upstream = {
        **config["cfg_dump_bidirectional_run"],
        "swin": config["tiny_vs_full"]["swin_encoder"]["tiny"],
    }
    propagator = load_propagator(name)
    net = propagator.build(propagator.config_type.from_upstream(upstream))
    load_state_dict_strict(net, _load(fixture, "state_dict.pt"), propagator.rules, str(fixture))
    return net.eval()


def fixture_views(fixture: Path, trace: dict[str, Any]) -> ViewConfig:
    """The views of a trace: its scales and flip, the fixture's long-side cap."""
    scales = tuple(sorted({v["scale"] for v in trace["views"]}))
    flip = any(v["flip"] for v in trace["views"])
    cap = _json(fixture, "config.json")["procedure"]["TEST_MAX_SIZE"]
    return ViewConfig(scales=scales, flip=flip, max_size=cap)


def stored_frame(fixture: Path, t: int, views: ViewConfig) -> list[Tensor]:
    """The normalised views the upstream engines received for frame t (clip.pt), per scale."""
    stored = _load(fixture, "clip.pt")["views_normalized"]
    out = []
    for scale in views.scales:
        image = next(v for k, v in stored.items() if float(k) == scale)[t]
        out.append(torch.stack([image, image.flip(-1)]) if views.flip else image[None])
    return out


def _live(trace: dict[str, Any]) -> int:
    """Ids the upstream engine decoded (its obj_nums)."""
    return trace["passes"][0]["reference"]["engine_state_after"]["obj_nums"][0]


def _sure(probs: Tensor) -> Tensor:
    top = probs.topk(2, dim=0).values
    return top[0] - top[1] > MARGIN


def _labels(check: ParityCheck, what: str, label: Tensor, expected: Tensor, probs: Tensor) -> None:
    sure = _sure(probs)
    check.equal(f"{what} label (margin > {MARGIN:g})", label[sure], expected.long()[sure])


def _state(check: ParityCheck, what: str, session: Session, state: dict, view: int) -> None:
    ours = [
        session.frame_step,
        session.last_mem_step,
        session.long_term_frames,
        session.long.layers[0][0].shape[0] if session.long is not None else 0,
    ]
    theirs = [
        state["frame_step"],
        state["last_mem_step"],
        state["long_term_frames"],
        state["long_term_tokens_per_view"][view],
    ]
    check.equal(f"{what} memory (step, last entry, frames, tokens)", ours, theirs)


def _check_single_view(
    check: ParityCheck, fixture: Path, net: PropagationNet, propagator: Propagator
) -> None:
    trace = _load(fixture, "trace_single_view.pt")
    views = fixture_views(fixture, trace)
    policy = propagator.policy(net.config, trace["long_term_mem_gap"])
    session = Session(net=net, policy=policy, live_ids=_live(trace))
    ids = _live(trace) + 1
    (single,) = trace["passes"]
    reference = single["reference"]
    with torch.no_grad():
        image = stored_frame(fixture, reference["frame"], views)[0]
        session.add_reference(net.encode(image), reference["mask"].long()[None, None])
        _features(check, "single reference", session, reference)
        _state(check, "single reference", session, reference["engine_state_after"], 0)
        for step in single["steps"]:
            what = f"single frame {step['frame']}"
            lowres = session.step(net.encode(stored_frame(fixture, step["frame"], views)[0]))
            _features(check, what, session, step)
            check.close(
                f"{what} lowres logits", lowres[0, :ids], step["lowres_logits"][:ids], **LOGITS
            )
            logits = F.interpolate(
                lowres, size=step["logits"].shape[-2:], mode="bilinear", align_corners=False
            )[0]
            check.close(f"{what} logits", logits[:ids], step["logits"][:ids], **LOGITS)
            probs = torch.softmax(logits, dim=0)
            check.close(f"{what} probabilities", probs, step["prob"], **PROBS)
            _labels(check, what, probs.argmax(0), step["label"], step["prob"])
            session.commit(step["fed_back_label"].long()[None, None])
            _state(check, what, session, step["engine_state_after"], 0)


def _features(check: ParityCheck, what: str, session: Session, recorded: dict) -> None:
    for i, (ours, ref) in enumerate(
        zip(session.features, recorded["encoder_features"], strict=True)
    ):
        check.close(f"{what} encoder map {i}", ours[0], ref, **FEATURES)
    for i, (ours, ref) in enumerate(zip(session.embs, recorded["lstt_embs"], strict=True)):
        check.close(f"{what} layer {i} output", ours[:, 0], ref, **FEATURES)


def _tracker(
    fixture: Path, trace: dict, net: PropagationNet, propagator: Propagator
) -> MultiViewTracker:
    views = fixture_views(fixture, trace)
    policy = propagator.policy(net.config, trace["long_term_mem_gap"])
    return MultiViewTracker(
        net=net,
        policy=policy,
        live_ids=_live(trace),
        views=views,
        size=tuple(trace["key_mask"].shape),
    )


def _per_view(trk: MultiViewTracker, label: Tensor) -> list[Tensor]:
    """What each view's session receives for a label, in the trace's view order."""
    return [m[0] for size in trk.view_sizes for m in view_labels(label, size, trk.views.flip)]


def _states(check: ParityCheck, what: str, trk: MultiViewTracker, state: dict) -> None:
    for i, session in enumerate(trk.sessions):
        _state(
            check, f"{what} scale {trk.views.scales[i]}", session, state, i * trk.views.per_scale
        )


def _check_teacher_forced(
    check: ParityCheck, fixture: Path, file: str, net: PropagationNet, propagator: Propagator
) -> None:
    trace = _load(fixture, file)
    trk = _tracker(fixture, trace, net, propagator)
    sizes = [list(s) for s in trk.view_sizes for _ in range(trk.views.per_scale)]
    check.equal(f"{file} view sizes", sizes, [v["size"] for v in trace["views"]])
    key = trace["key_mask"].long()
    ids = _live(trace) + 1
    with torch.no_grad():
        for step_pass in trace["passes"]:
            what = f"{file} {step_pass['stage']}"
            reference = step_pass["reference"]
            trk.add_reference(trk.encode(stored_frame(fixture, reference["frame"], trk.views)), key)
            for v, (ours, ref) in enumerate(
                zip(_per_view(trk, key), reference["mask_per_view"], strict=True)
            ):
                check.equal(f"{what} reference mask view {v}", ours, ref.long())
            _states(check, f"{what} reference", trk, reference["engine_state_after"])
            for step in step_pass["steps"]:
                _check_step(check, f"{what} frame {step['frame']}", fixture, trk, step, ids)


def _check_step(
    check: ParityCheck, what: str, fixture: Path, trk: MultiViewTracker, step: dict, ids: int
) -> None:
    probs = trk.predict(trk.encode(stored_frame(fixture, step["frame"], trk.views)))
    if "avg_prob" in step:
        check.close(f"{what} averaged probabilities", probs, step["avg_prob"], **PROBS)
        _labels(check, what, probs.argmax(0), step["label"], step["avg_prob"])
    if "lowres_logits_per_view" in step:
        ours = [view for scale in trk.last_lowres for view in scale]
        for v, (mine, ref) in enumerate(zip(ours, step["lowres_logits_per_view"], strict=True)):
            check.close(f"{what} lowres logits view {v}", mine[:ids], ref[:ids], **LOGITS)
    trk.commit(step["label"].long())
    fed = zip(_per_view(trk, step["label"].long()), step["fed_back_label_per_view"], strict=True)
    for v, (ours, ref) in enumerate(fed):
        check.equal(f"{what} fed-back label view {v}", ours, ref.long())
    _states(check, what, trk, step["engine_state_after"])


def free_running_labels(
    fixture: Path,
    trace: dict[str, Any],
    net: PropagationNet,
    propagator: Propagator,
    frames: Callable[[int], FrameViews] | None = None,
) -> dict[int, Tensor]:
    """The procedure run free on a trace's clip (its own labels fed back): frame -> label
    int64 [H, W] on the network's device, in prediction order. ``frames``: t -> the views of
    frame t on that device (default: the stored views the upstream engines received)."""
    trk = _tracker(fixture, trace, net, propagator)
    views = frames or (lambda t: stored_frame(fixture, t, trk.views))
    key = trace["key_mask"].long().to(next(net.parameters()).device)
    count = trace["final"]["label"].shape[0]
    with torch.no_grad():
        return dict(bidirectional(trk, views, trace["key_frame"], key, count))


def upstream_trajectory(labels: dict[int, Tensor], upstream: Tensor) -> list[int]:
    """The frames of ``labels`` (prediction order) predicted from upstream's own memory: all up to
    and including the first whose label differs from upstream's ``upstream[t]`` anywhere.

    Labels may differ where the stored margin is below ``MARGIN`` (another CPU sums in another
    order and may decide such a near tie the other way); the differing label then goes into the
    memory, and one such pixel moves later labels at pixels with margins far above ``MARGIN``, so
    the README's bounds hold for later frames only teacher-forced."""
    frames = []
    for t, label in labels.items():
        frames.append(t)
        if not torch.equal(label, upstream[t].long()):
            break
    return frames


def _check_free_running(
    check: ParityCheck, fixture: Path, file: str, net: PropagationNet, propagator: Propagator
) -> None:
    """The procedure with its own labels fed back gives the upstream labels (on upstream's
    trajectory, see ``upstream_trajectory``), in upstream order."""
    trace = _load(fixture, file)
    labels = free_running_labels(fixture, trace, net, propagator)
    final = trace["final"]
    steps = {s["frame"]: s for p in trace["passes"] for s in p["steps"]}
    for t in upstream_trajectory(labels, final["label"]):
        step = steps[t]
        what = f"{file} free-running frame {t}"
        if "avg_prob" in step:
            _labels(check, what, labels[t], final["label"][t], step["avg_prob"])
        elif step["min_top2_margin"] > MARGIN:
            check.equal(f"{what} label", labels[t], final["label"][t].long())
    upstream = [
        t
        for stage in ("Forward", "Backward")
        for t in sorted(
            (t for t, s in enumerate(final["source"]) if s == stage), reverse=stage == "Backward"
        )
    ]
    check.equal(f"{file} prediction order", list(labels), upstream)


def _check_full_keys(check: ParityCheck, propagator: Propagator, fixture: Path) -> None:
    """Every full-size configuration keys_full.json lists, built on the meta device."""
    table = _json(fixture, "keys_full.json")
    variants = table.get("variants", {"full": table})
    for variant, entry in variants.items():
        with torch.device("meta"):
            net = propagator.build(propagator.config_type.from_upstream(entry["config"]))
        ours = sorted(
            f"{k} {list(v.shape)} {str(v.dtype).removeprefix('torch.')}"
            for k, v in net.state_dict().items()
        )
        theirs = sorted(f"{key} {shape} {dtype}" for key, shape, dtype, _ in entry["keys"])
        check.equal(f"keys_full {variant}: keys, shapes, dtypes", ours, theirs)


def _vos_parity(name: str, fixture: Path, check: ParityCheck) -> None:
    propagator = load_propagator(name)
    net = fixture_network(name, fixture)
    _check_full_keys(check, propagator, fixture)
    _check_single_view(check, fixture, net, propagator)
    for file in BIDIRECTIONAL:
        _check_teacher_forced(check, fixture, file, net, propagator)
        _check_free_running(check, fixture, file, net, propagator)


def aot_parity(fixture: Path, check: ParityCheck) -> None:
    """The ``aot`` fixture (competition AOT copy)."""
    _vos_parity("aot", fixture, check)


def deaot_parity(fixture: Path, check: ParityCheck) -> None:
    """The ``deaot`` fixture (stock DeAOT driven by the competition procedure)."""
    _vos_parity("deaot", fixture, check)

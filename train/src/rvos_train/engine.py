"""The training engine: one loop for every trainable model (``ModelEntry.training``).

A step takes one global batch (rvos_train.sampling): each process runs its micro-batches (clips
-> the model's training forward -> its criterion), the losses are normalised by the number of
targets of the whole global batch exactly as upstream's DDP normalises them (each process divides
by the all-reduced count over the processes; here a step's count is summed over all micro-batches
of all processes and divided by processes x micro-batches), gradients are averaged (DDP), clipped
to ``clip_max_norm`` and AdamW steps at the epoch's learning rate. AMP: bf16 autocast on CPU or
GPU, fp16 autocast with a gradient scaler on GPU. Checkpoints every ``checkpoint_every`` steps and
at each epoch's end (rvos_train.rundir); the validation hook after the epochs that ask for it.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from rvos_core.errors import ConfigError, RvosError
from rvos_core.progress import progress_bar
from rvos_nn.checkpoint import load_checkpoint
from rvos_nn.precision import check_precision
from rvos_nn.predictor import ModelEntry, load_model_entry
from rvos_nn.text import Tokenizer
from rvos_nn.training import Clip, TrainingHooks
from rvos_train import distributed, sampling
from rvos_train.config import TrainConfig
from rvos_train.data import ClipDataset, concat, open_training_set
from rvos_train.initialise import initialise, training_tokenizer
from rvos_train.losses import Criterion, criterion, settings_for
from rvos_train.metrics import MetricsLog
from rvos_train.optim import build_optimizer, freeze_text_encoder, set_learning_rates
from rvos_train.rundir import Resume, RunDir, file_sha256
from rvos_train.validation import ValidationJob, validate

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


class TrainingError(RvosError):
    """Training cannot go on (a loss that is not finite)."""


@dataclass(frozen=True)
class EngineSettings:
    """Where and how one run trains (not part of the configuration: changing them does not change
    what is learnt, except precision, which the run records).

    Attributes:
        run: the run folder. data / pretrained: paths.env's DATA and PRETRAINED. init: the
        checkpoint of ``init.source = "checkpoint"``. device: cpu or cuda. precision: fp32, bf16,
        fp16 (cuda). workers: data-loading processes per training process. checkpoint_every:
        steps between checkpoints (0: at epoch ends only). log_every: steps between metric lines.
        stop_after: end this invocation after that many steps in total (the run stays resumable).
    """

    run: Path
    data: Path
    pretrained: Path
    init: Path | None = None
    device: str = "cpu"
    precision: str = "fp32"
    workers: int = 2
    checkpoint_every: int = 0
    log_every: int = 10
    stop_after: int | None = None


@dataclass
class Job:
    """Everything one process trains with."""

    config: TrainConfig
    settings: EngineSettings
    world: distributed.World
    entry: ModelEntry
    hooks: TrainingHooks
    dataset: ClipDataset
    layout: sampling.Layout
    steps_per_epoch: int
    model: nn.Module
    step_module: nn.Module
    tokenizer: Tokenizer
    criterion: Criterion
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    rundir: RunDir

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.optim.epochs


class TrainStep(nn.Module):
    """The model's training forward as a module (what DDP wraps): clips -> outputs."""

    def __init__(self, model: nn.Module, hooks: TrainingHooks, tokenizer: Tokenizer):
        super().__init__()
        self.model = model
        self.hooks = hooks
        self.tokenizer = tokenizer

    def forward(self, clips: Sequence[Clip]) -> dict[str, Any]:
        return self.hooks.forward(self.model, self.tokenizer, clips)


def train(config: TrainConfig, settings: EngineSettings) -> dict[str, Any]:
    """Train (or resume) the run; returns the summary that done.json holds."""
    world = distributed.join(settings.device)
    try:
        job = prepare_job(config, settings, world)
        try:
            return _run(job)
        finally:
            job.rundir.release()
    finally:
        distributed.leave()


def prepare_job(config: TrainConfig, settings: EngineSettings, world: distributed.World) -> Job:
    """Everything one process trains with (checks the model, the loss and the data before the run
    folder is written)."""
    precision = check_precision(settings.precision, world.device)
    entry = load_model_entry(config.model)
    if entry.training is None:
        raise ConfigError(
            f"model {config.model} cannot be trained (its entry declares no training)"
        )
    hooks = entry.training
    dataset = _open_data(config, settings.data)
    layout = _layout(config, world.size)
    per_epoch = sampling.steps_per_epoch(len(dataset), layout.global_batch)
    if per_epoch == 0:
        raise ConfigError(
            f"the training set has {len(dataset)} samples, fewer than one global batch "
            f"({layout.global_batch})"
        )
    model = _initial_model(config, settings, entry, hooks, world)
    tokenizer = training_tokenizer(model, hooks, settings.pretrained)
    loss = criterion(
        hooks.criterion, settings_for(hooks.criterion, config.loss, hooks.decoder_layers(model))
    )
    rundir = RunDir(settings.run)  # written only once everything above is known to work
    if world.main:
        rundir.claim()
        rundir.check_settings(_recorded_settings(config, settings, precision))
    distributed.barrier()
    step_module = TrainStep(model, hooks, tokenizer).to(world.device)
    optimizer = build_optimizer(model, hooks.param_group, config.optim, hooks.no_weight_decay)
    if world.size > 1:
        step_module = DistributedDataParallel(step_module, find_unused_parameters=True)
    return Job(
        config=config,
        settings=settings,
        world=world,
        entry=entry,
        hooks=hooks,
        dataset=dataset,
        layout=layout,
        steps_per_epoch=per_epoch,
        model=model,
        step_module=step_module,
        tokenizer=tokenizer,
        criterion=loss,
        optimizer=optimizer,
        scaler=torch.amp.GradScaler(world.device.type, enabled=precision == "fp16"),
        rundir=rundir,
    )


def _open_data(config: TrainConfig, data: Path) -> ClipDataset:
    d = config.data
    sets = [
        open_training_set(name, data, recipe=d.recipe, num_frames=d.num_frames, **d.options)
        for name in d.sets
    ]
    return sets[0] if len(sets) == 1 else concat(sets)


def _layout(config: TrainConfig, world: int) -> sampling.Layout:
    o = config.optim
    try:
        accumulation = sampling.accumulation_for(o.global_batch, o.batch_size, world)
    except ValueError as exc:
        raise ConfigError(f"{exc} (reference_gpus = {o.reference_gpus})") from None
    return sampling.Layout(batch_size=o.batch_size, world=world, accumulation=accumulation)


def _recorded_settings(
    config: TrainConfig, settings: EngineSettings, precision: str
) -> dict[str, Any]:
    init = settings.init
    return {
        "config": config.to_json(),
        "precision": precision,
        "init_checkpoint": None
        if init is None
        else {"path": str(init.resolve()), "sha256": file_sha256(init)},
        "data": str(settings.data.resolve()),
    }


def _initial_model(
    config: TrainConfig,
    settings: EngineSettings,
    entry: ModelEntry,
    hooks: TrainingHooks,
    world: distributed.World,
) -> nn.Module:
    """The model with its starting weights (random parts seeded by the config's seed, the same
    on every process), text encoder frozen if asked, in train mode."""
    torch.manual_seed(config.seed)
    model = entry.build(config.variant)
    initialise(
        model, config.init.source, entry, settings.pretrained, settings.init, verbose=world.main
    )
    if config.optim.freeze_text_encoder:
        freeze_text_encoder(model, hooks.param_group)
    return model.train()


def _run(job: Job) -> dict[str, Any]:
    resume = job.rundir.latest() if job.world.main else None
    start = _broadcast_start(job, resume)
    if job.rundir.done_file.is_file() and start >= job.total_steps:
        return {"steps": job.total_steps, "already_finished": True}
    stop = job.settings.stop_after
    end = job.total_steps if stop is None else max(start, min(job.total_steps, stop))
    log = MetricsLog(job.rundir.root, job.rundir.metrics_file, start) if job.world.main else None
    try:
        _loop(job, start, end, log)
    finally:
        if log is not None:
            log.close()
    if end < job.total_steps:
        return {"steps": end, "stopped_early": True}
    summary = {"steps": job.total_steps, "epochs": job.config.optim.epochs}
    if job.world.main:
        job.rundir.finish(_model_state(job), summary)
    distributed.barrier()
    return summary


def _broadcast_start(job: Job, resume: Resume | None) -> int:
    """Load the newest checkpoint on every process (rank 0 finds it); the step to start at."""
    found = distributed.broadcast_flag(resume is not None, job.world.device)
    if not found:
        return 0
    if resume is None:  # another rank: read the same folder
        resume = job.rundir.latest()
    load_checkpoint(job.model, resume.model, job.entry.checkpoint_rules)
    state = torch.load(resume.trainer, map_location="cpu", weights_only=True)
    job.optimizer.load_state_dict(state["optimizer"])
    job.scaler.load_state_dict(state["scaler"])
    if job.world.main:
        job.rundir.cut_metrics(state["step"])
    return int(state["step"])


def _loop(job: Job, start: int, end: int, log: MetricsLog | None) -> None:
    """Steps [start, end): the main process shows a bar with the ETA (or, without a terminal,
    prints each logged step with its ETA), logs, checkpoints and validates."""
    with progress_bar(end - start, f"train {job.config.model}", unit="step") as bar:
        clock = _Clock(start, end, job.layout.global_batch)
        step = start
        while step < end:
            epoch, first = divmod(step, job.steps_per_epoch)
            last = min(job.steps_per_epoch, first + end - step)
            batches = epoch_batches(job, epoch, first, last)
            for _ in range(first, last):
                micro = [next(batches) for _ in range(job.layout.accumulation)]
                record = train_step(job, step, micro)
                step += 1
                if job.world.main:
                    bar.update(1)
                _after_step(job, step, end, record, log, clock, quiet=not bar.disable)


@dataclass
class _Clock:
    """Throughput and ETA of one invocation."""

    start: int
    end: int
    global_batch: int
    started: float = field(default_factory=time.perf_counter)

    def clips_per_s(self, step: int) -> float:
        return (step - self.start) * self.global_batch / (time.perf_counter() - self.started)

    def eta(self, step: int) -> str:
        elapsed = time.perf_counter() - self.started
        seconds = round(elapsed / (step - self.start) * (self.end - step))
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _after_step(
    job: Job,
    step: int,
    end: int,
    record: dict[str, Any],
    log: MetricsLog | None,
    clock: _Clock,
    quiet: bool,
) -> None:
    """Log (and print when no bar shows), checkpoint and validate after ``step``."""
    epoch_end = step % job.steps_per_epoch == 0
    if log is not None and (step % job.settings.log_every == 0 or epoch_end or step == end):
        record["clips_per_s"] = clock.clips_per_s(step)
        log.log(step, record)
        if not quiet:
            print(
                f"step {step}/{job.total_steps} epoch {record['epoch']} loss {record['loss']:.4f}"
                f" {record['clips_per_s']:.2f} clips/s ETA {clock.eta(step)}",
                file=sys.stderr,
            )
    every = job.settings.checkpoint_every
    if epoch_end or (every and step % every == 0) or step == end:
        _checkpoint(job, step)
    if epoch_end:
        _maybe_validate(job, step // job.steps_per_epoch, log)


class _EpochClips(torch.utils.data.Dataset):
    """This process's clips of steps [first, last) of one epoch, in the order it trains on them
    (step, micro-batch, clip); item i is drawn with its position's own generator, so the result
    does not depend on which loader worker draws it."""

    def __init__(self, job: Job, epoch: int, first: int, last: int):
        self.dataset = job.dataset
        self.seed = job.config.seed
        self.epoch = epoch
        self.order = sampling.epoch_order(len(job.dataset), job.config.seed, epoch)
        self.positions = [
            p
            for step in range(first, last)
            for micro in range(job.layout.accumulation)
            for p in sampling.micro_positions(job.layout, step, micro, job.world.rank)
        ]

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> Clip:
        p = self.positions[i]
        return self.dataset.clip(int(self.order[p]), sampling.clip_rng(self.seed, self.epoch, p))


def epoch_batches(job: Job, epoch: int, first: int, last: int) -> Iterator[list[Clip]]:
    """Micro-batches of steps [first, last) of ``epoch``, loaded ahead by the worker pool."""
    workers = job.settings.workers
    loader = torch.utils.data.DataLoader(
        _EpochClips(job, epoch, first, last),
        batch_size=job.layout.batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=list,
        prefetch_factor=2 if workers else None,
        pin_memory=job.world.device.type == "cuda",
    )
    for clips in loader:
        yield [_to(clip, job.world.device) for clip in clips]


def train_step(job: Job, step: int, micro: list[list[Clip]]) -> dict[str, Any]:
    """One optimizer step over the global batch (``micro``: this process's micro-batches);
    returns the logged values averaged over all processes and micro-batches."""
    epoch = step // job.steps_per_epoch
    set_learning_rates(job.optimizer, job.config.optim, epoch, step)
    targets = [job.criterion.targets(clips) for clips in micro]
    norm = _normaliser(job, targets)
    sums: dict[str, torch.Tensor] = {}
    for m, clips in enumerate(micro):
        sampling.seed_model_rng(job.config.seed, step, job.layout.slot(m, job.world.rank))
        last = m == job.layout.accumulation - 1
        with _sync_unless(job, last), _autocast(job):
            outputs = job.step_module(clips)
            losses, _ = job.criterion(outputs, targets[m], normaliser=norm)
            total = job.criterion.total(losses) / job.layout.accumulation
        job.scaler.scale(total).backward()
        for key, value in losses.items():
            sums[key] = sums.get(key, 0) + value.detach().float() * job.criterion.weight_dict[key]
    record = _averaged(job, sums, epoch)
    _check_finite(record, step)
    record["grad_norm"] = _apply(job)
    record.update({f"lr_{g['name']}": g["lr"] for g in job.optimizer.param_groups})
    return record


def _check_finite(record: dict[str, Any], step: int) -> None:
    """Stop, as upstream does, when the loss is not finite: before the optimizer steps, so the
    newest checkpoint stays the last good state (every process sees the same averaged values)."""
    if math.isfinite(record["loss"]):
        return
    bad = sorted(k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v))
    raise TrainingError(
        f"the loss is not finite at step {step + 1} (epoch {record['epoch']}): "
        f"{', '.join(bad)}; the run stops before updating the weights (its newest checkpoint is "
        "the last good state: lower the learning rate or use fp32/bf16, then resume)"
    )


def _to(clip: Clip, device: torch.device) -> Clip:
    if device.type == "cpu":
        return clip
    return replace(
        clip,
        frames=clip.frames.to(device, non_blocking=True),
        masks=clip.masks.to(device),
        boxes=clip.boxes.to(device),
        valid=clip.valid.to(device),
        frame_ids=clip.frame_ids.to(device),
    )


def _normaliser(job: Job, targets: list[Any]) -> float:
    """Upstream's per-process target count: the global batch's count (``targets``: this
    process's micro-batches) / its number of micro-batches (processes x accumulation), >= 1."""
    local = sum(job.criterion.count(t) for t in targets)
    total = distributed.sum_all(torch.tensor([float(local)], device=job.world.device))
    return max(float(total.item()) / (job.layout.world * job.layout.accumulation), 1.0)


@contextlib.contextmanager
def _sync_unless(job: Job, last: bool) -> Iterator[None]:
    """DDP's gradient all-reduce only on the step's last micro-batch."""
    if isinstance(job.step_module, DistributedDataParallel) and not last:
        with job.step_module.no_sync():
            yield
    else:
        yield


def _autocast(job: Job) -> contextlib.AbstractContextManager:
    dtype = AUTOCAST.get(job.settings.precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=job.world.device.type, dtype=dtype)


def _apply(job: Job) -> float:
    """Unscale, clip and step; returns the gradient norm before clipping."""
    job.scaler.unscale_(job.optimizer)
    params = [p for p in job.model.parameters() if p.requires_grad]
    max_norm = job.config.optim.clip_max_norm
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else float("inf"))
    job.scaler.step(job.optimizer)
    job.scaler.update()
    job.optimizer.zero_grad(set_to_none=True)
    return float(norm)


def _averaged(job: Job, sums: dict[str, torch.Tensor], epoch: int) -> dict[str, Any]:
    """The weighted losses of this step, averaged over processes and micro-batches."""
    keys = sorted(sums)
    values = torch.stack([sums[k].reshape(()) for k in keys]).to(job.world.device)
    values = distributed.sum_all(values) / (job.layout.world * job.layout.accumulation)
    record: dict[str, Any] = {"epoch": epoch, "loss": float(values.sum())}
    record.update({k: float(v) for k, v in zip(keys, values, strict=True)})
    return record


def _model_state(job: Job) -> dict[str, Any]:
    """The weights in the model's upstream checkpoint layout."""
    return {job.hooks.checkpoint_container: job.model.state_dict()}


def _checkpoint(job: Job, step: int) -> None:
    if job.world.main:
        trainer = {
            "step": step,
            "optimizer": job.optimizer.state_dict(),
            "scaler": job.scaler.state_dict(),
        }
        job.rundir.save(step, _model_state(job), trainer)
    distributed.barrier()


def _maybe_validate(job: Job, epoch: int, log: MetricsLog | None) -> None:
    v = job.config.validate
    if not v.every_epochs or epoch % v.every_epochs:
        return
    if job.world.main:
        resume = job.rundir.latest()
        scores = validate(
            ValidationJob(
                model=job.config.model,
                variant=job.config.variant,
                checkpoint=resume.model,
                pretrained=job.settings.pretrained,
                data=job.settings.data,
                dataset=v.dataset,
                split=v.split,
                device=job.settings.device,
                out=job.rundir.root / "valid" / f"epoch-{epoch:03d}",
            )
        )
        if log is not None:
            log.log(resume.step, {f"valid_{k}": value for k, value in scores.items()})
    distributed.barrier()

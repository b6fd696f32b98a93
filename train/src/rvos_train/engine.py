"""The training engine: one loop for every trainable model family (rvos_train.task).

A step takes one global batch (rvos_train.sampling): each process runs its micro-batches (samples
-> the task's training forward -> its weighted loss terms), the losses are normalised by the
number of targets of the whole global batch exactly as upstream's DDP normalises them (each
process divides by the all-reduced count over the processes; here a step's count is summed over
all micro-batches of all processes and divided by processes x micro-batches), gradients are
averaged (DDP), clipped to the task's ``clip_max_norm`` and the optimizer steps at the task's
learning rates for that step. AMP: bf16 autocast on CPU or GPU, fp16 autocast with a gradient
scaler on GPU. Checkpoints every ``checkpoint_every`` steps and at each epoch's end
(rvos_train.rundir); the validation hook after the epochs that ask for it.

The run's length: ``optim.epochs`` passes over the data, or ``optim.steps`` steps when set (the
data order still goes epoch by epoch; the last epoch may end early). Where the task asks for it
(``Task.average_ratio``: AOT/DeAOT), a moving average of the weights is kept (rvos_train.ema),
checkpointed, validated and written as the final weights.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from rvos_core.errors import ConfigError, RvosError
from rvos_core.progress import progress_bar
from rvos_nn.precision import check_precision
from rvos_train import distributed, sampling
from rvos_train.config import TrainConfig
from rvos_train.ema import WeightAverage
from rvos_train.metrics import MetricsLog
from rvos_train.rundir import Resume, RunDir, file_sha256
from rvos_train.task import EngineSettings, SampleSet, Task, to_device
from rvos_train.tasks import task_for

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}

__all__ = [
    "EngineSettings",
    "Job",
    "TrainingError",
    "epoch_batches",
    "prepare_job",
    "train",
    "train_step",
]


class TrainingError(RvosError):
    """Training cannot go on (a loss that is not finite)."""


@dataclass
class Job:
    """Everything one process trains with."""

    config: TrainConfig
    settings: EngineSettings
    world: distributed.World
    task: Task
    dataset: SampleSet
    layout: sampling.Layout
    steps_per_epoch: int
    total_steps: int
    model: nn.Module
    step_module: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    rundir: RunDir
    average: WeightAverage | None

    @property
    def epochs(self) -> int:
        return -(-self.total_steps // self.steps_per_epoch)


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
    task = task_for(config, settings)
    dataset = task.open_data()
    layout = _layout(config, world.size)
    per_epoch = sampling.steps_per_epoch(len(dataset), layout.global_batch)
    if per_epoch == 0:
        raise ConfigError(
            f"the training set has {len(dataset)} samples, fewer than one global batch "
            f"({layout.global_batch})"
        )
    total = config.optim.steps or per_epoch * config.optim.epochs
    torch.manual_seed(config.seed)  # the random parts of the model: the same on every process
    model = task.build_model(verbose=world.main)
    task.plan(total)
    rundir = RunDir(settings.run)  # written only once everything above is known to work
    if world.main:
        rundir.claim()
        rundir.check_settings(_recorded_settings(task, precision))
    distributed.barrier()
    step_module = task.step_module(model).to(world.device)
    optimizer = task.build_optimizer(model)
    ratio = task.average_ratio
    average = WeightAverage.for_run(model, total, ratio) if ratio else None
    if world.size > 1:
        step_module = DistributedDataParallel(step_module, find_unused_parameters=True)
    return Job(
        config=config,
        settings=settings,
        world=world,
        task=task,
        dataset=dataset,
        layout=layout,
        steps_per_epoch=per_epoch,
        total_steps=total,
        model=model,
        step_module=step_module,
        optimizer=optimizer,
        scaler=torch.amp.GradScaler(world.device.type, enabled=precision == "fp16"),
        rundir=rundir,
        average=average,
    )


def _layout(config: TrainConfig, world: int) -> sampling.Layout:
    o = config.optim
    try:
        accumulation = sampling.accumulation_for(o.global_batch, o.batch_size, world)
    except ValueError as exc:
        raise ConfigError(f"{exc} (reference_gpus = {o.reference_gpus})") from None
    return sampling.Layout(batch_size=o.batch_size, world=world, accumulation=accumulation)


def _recorded_settings(task: Task, precision: str) -> dict[str, Any]:
    init, settings = task.settings.init, task.settings
    return {
        "config": task.config.to_json(),
        "precision": precision,
        "init_checkpoint": None
        if init is None
        else {"path": str(init.resolve()), "sha256": file_sha256(init)},
        "data": str(settings.data.resolve()),
        **task.recorded(),
    }


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
    summary = {"steps": job.total_steps, "epochs": job.epochs}
    if job.world.main:
        job.rundir.finish(_model_state(job, averaged=job.average is not None), summary)
    distributed.barrier()
    return summary


def _broadcast_start(job: Job, resume: Resume | None) -> int:
    """Load the newest checkpoint on every process (rank 0 finds it); the step to start at."""
    found = distributed.broadcast_flag(resume is not None, job.world.device)
    if not found:
        return 0
    if resume is None:  # another rank: read the same folder
        resume = job.rundir.latest()
    job.task.load_weights(job.model, resume.model)
    state = torch.load(resume.trainer, map_location="cpu", weights_only=True)
    job.optimizer.load_state_dict(state["optimizer"])
    job.scaler.load_state_dict(state["scaler"])
    if job.average is not None:
        job.average.load(state["average"])
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
    epoch_end = step % job.steps_per_epoch == 0 or step == job.total_steps
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
        _maybe_validate(job, -(-step // job.steps_per_epoch), log)


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

    def __getitem__(self, i: int) -> Any:
        p = self.positions[i]
        return self.dataset.clip(int(self.order[p]), sampling.clip_rng(self.seed, self.epoch, p))


def epoch_batches(job: Job, epoch: int, first: int, last: int) -> Iterator[list[Any]]:
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
        yield [to_device(clip, job.world.device) for clip in clips]


def train_step(job: Job, step: int, micro: list[list[Any]]) -> dict[str, Any]:
    """One optimizer step over the global batch (``micro``: this process's micro-batches);
    returns the logged values averaged over all processes and micro-batches."""
    epoch = step // job.steps_per_epoch
    rates = job.task.set_learning_rates(job.optimizer, step, epoch)
    targets = [job.task.targets(samples) for samples in micro]
    norm = _normaliser(job, targets)
    sums: dict[str, torch.Tensor] = {}
    for m, samples in enumerate(micro):
        sampling.seed_model_rng(job.config.seed, step, job.layout.slot(m, job.world.rank))
        last = m == job.layout.accumulation - 1
        with _sync_unless(job, last), _autocast(job):
            outputs = job.step_module(samples, step)
            terms = job.task.loss_terms(outputs, targets[m], norm, step)
            total = torch.stack(list(terms.values())).sum() / job.layout.accumulation
        job.scaler.scale(total).backward()
        for key, value in terms.items():
            sums[key] = sums.get(key, 0) + value.detach().float()
    record = _averaged(job, sums, epoch)
    _check_finite(record, step)
    record["grad_norm"] = _apply(job)
    record.update(rates)
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


def _normaliser(job: Job, targets: list[Any]) -> float:
    """Upstream's per-process target count: the global batch's count (``targets``: this
    process's micro-batches) / its number of micro-batches (processes x accumulation), >= 1."""
    local = sum(job.task.count(t) for t in targets)
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
    max_norm = job.task.clip_max_norm
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else float("inf"))
    job.scaler.step(job.optimizer)
    job.scaler.update()
    job.optimizer.zero_grad(set_to_none=True)
    if job.average is not None:
        job.average.update(job.model)
    return float(norm)


def _averaged(job: Job, sums: dict[str, torch.Tensor], epoch: int) -> dict[str, Any]:
    """The weighted losses of this step, averaged over processes and micro-batches."""
    keys = sorted(sums)
    values = torch.stack([sums[k].reshape(()) for k in keys]).to(job.world.device)
    values = distributed.sum_all(values) / (job.layout.world * job.layout.accumulation)
    record: dict[str, Any] = {"epoch": epoch, "loss": float(values.sum())}
    record.update({k: float(v) for k, v in zip(keys, values, strict=True)})
    return record


def _model_state(job: Job, averaged: bool = False) -> dict[str, Any]:
    """The weights (``averaged``: the weight average's) in the model's upstream checkpoint
    layout."""
    state = job.average.state_dict_of(job.model) if averaged else job.model.state_dict()
    return {job.task.checkpoint_container: state}


def _checkpoint(job: Job, step: int) -> None:
    if job.world.main:
        trainer = {
            "step": step,
            "optimizer": job.optimizer.state_dict(),
            "scaler": job.scaler.state_dict(),
        }
        average = None
        if job.average is not None:
            trainer["average"] = job.average.state()
            average = _model_state(job, averaged=True)
        job.rundir.save(step, _model_state(job), trainer, average)
    distributed.barrier()


def _maybe_validate(job: Job, epoch: int, log: MetricsLog | None) -> None:
    every = job.config.validate.every_epochs
    if not every or epoch % every:
        return
    if job.world.main:
        resume = job.rundir.latest()
        out = job.rundir.root / "valid" / f"epoch-{epoch:03d}"
        scores = job.task.validate(resume.evaluated, out)
        if log is not None:
            log.log(resume.step, {f"valid_{k}": value for k, value in scores.items()})
    distributed.barrier()

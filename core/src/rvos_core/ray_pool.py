"""Run a ``Work`` (rvos_core.parallel) on a Ray cluster: ``EXECUTOR=ray``.

The driver connects to ``RAY_ADDRESS`` (or starts a local Ray) and places workers: one per
``gpus`` share of the cluster's GPUs for a GPU stage, one per CPU otherwise, ``RAY_WORKERS`` at
most when set, never more than there are items. Each worker is a Ray actor that runs the work's
setup once (a network is loaded once per worker) and then one item at a time, taken from one
queue ordered longest first (``Work.cost``, frames x expressions for a stage), so that the last
videos to finish are short ones. Stages write their videos into the run folder themselves, so
every worker must see the same WORK folder: a shared file system is required.

Faults:

- A worker that dies (process killed, node lost) is replaced, and the video it held goes back to
  the front of the queue; a video whose worker dies ``DEATHS`` times stops the stage.
- A task that raises (a reason in the data, or a passing fault of one machine) is tried once
  more on another worker when there is one; the second failure stops the stage with the task's
  own error, which the command reports as it does locally (one line for an error of
  rvos_core.errors).
- What a dead worker staged is never visible: a video is committed whole (rvos_core.runfolder).
  A worker presumed dead that is still writing holds the video's lock, so the retry waits for
  it, then finds the video done or stages it anew.
- On any stop, Ctrl-C included, every worker is killed; finished videos stay finished.

Workers with nothing left to take are let go at once, so that stages running at the same time
(``make -j``) share the cluster: a stage's workers start as resources free up.

Settings (environment): ``RAY_ADDRESS`` (a running cluster; unset: a local Ray with every CPU
of this machine, stopped at the end), ``RAY_WORKERS`` (the most workers to place),
``RAY_GPU_FRACTION`` (the GPU share of a worker of a GPU stage, instead of the stage's own).
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from rvos_core.errors import ConfigError, RvosError
from rvos_core.progress import progress_bar
from rvos_core.work import Work, init_worker

ATTEMPTS = 2  # a task that raises this many times on one item stops the work
DEATHS = 3  # a worker that dies this many times on one item (or while starting) stops the work
LOCAL_OBJECT_STORE = 256 * 1024 * 1024  # bytes: items and results are small


class WorkerLost(RvosError):
    """Ray workers kept dying on one item (or while starting)."""


class Worker:
    """A Ray actor: sets the task up once (``start``), then runs it item by item (``run``)."""

    def __init__(self, setup: Callable[[], Callable[[Any], Any]]) -> None:
        self._setup = setup
        self._task: Callable[[Any], Any] | None = None

    def start(self) -> None:
        init_worker()
        self._task = self._setup()

    def run(self, item: Any) -> Any:
        assert self._task is not None, "start() sets the task up"
        return self._task(item)


def connect() -> bool:
    """Connect to ``RAY_ADDRESS``, or start a local Ray; True when this call connected (the
    caller then disconnects), False when this process was connected already."""
    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS") or None
    local = {} if address else {"object_store_memory": LOCAL_OBJECT_STORE}
    ray.init(
        address=address or "local",
        include_dashboard=False,
        logging_level=logging.WARNING,
        **local,
    )
    return True


def _positive(name: str, convert: Callable[[str], float]) -> float | None:
    """The value of environment variable ``name`` (> 0), None when unset."""
    text = os.environ.get(name)
    if not text:
        return None
    try:
        value = convert(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(f"{name}={text}: expected a number above 0")
    return value


def worker_gpus(work: Work) -> float:
    """The GPU share of one worker: 0 for a CPU work, else RAY_GPU_FRACTION or the work's."""
    if not work.gpus:
        return 0.0
    return _positive("RAY_GPU_FRACTION", float) or work.gpus


def worker_count(work: Work, gpus: float, resources: dict[str, float]) -> int:
    """How many workers to place for ``work`` on a cluster of ``resources`` (see the module)."""
    if gpus:
        fit = int(resources.get("GPU", 0.0) / gpus + 1e-9)
        if not fit:
            raise ConfigError(
                f"{work.desc}: a worker needs {gpus:g} GPU and the Ray cluster has "
                f"{resources.get('GPU', 0.0):g}; use DEVICE=cpu or a cluster with GPUs"
            )
    else:
        fit = max(1, int(resources.get("CPU", 1.0)))
    wanted = _positive("RAY_WORKERS", int)
    return max(1, min(int(wanted or fit), len(work.items)))


def longest_first(work: Work) -> list[int]:
    """Item indices, the largest ``work.cost`` first (ties in item order)."""
    order = range(len(work.items))
    if work.cost is None:
        return list(order)
    costs = [work.cost(item) for item in work.items]
    return sorted(order, key=lambda i: -costs[i])


def describe(work: Work, index: int) -> str:
    item = work.items[index]
    return f"{work.unit} {item}" if isinstance(item, str) else f"{work.unit} #{index}"


def first_line(exc: BaseException) -> str:
    """The first line of Ray's (multi-line) account of an error."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def say(message: str) -> None:
    print(message, file=sys.stderr)


class Scheduler:
    """Hands the items of ``work`` to ``count`` Ray workers, one at a time each, and gathers the
    results; replaces dead workers and retries their items (see the module)."""

    def __init__(self, work: Work, count: int, gpus: float) -> None:
        self.work = work
        self.actor = ray.remote(Worker).options(num_cpus=1, num_gpus=gpus, max_restarts=0)
        self.setup = ray.put(work.setup)
        self.queue: deque[tuple[int, Any]] = deque((i, None) for i in longest_first(work))
        self.failures: Counter[int] = Counter()
        self.deaths: Counter[int] = Counter()
        self.results: dict[int, Any] = {}
        self.starting: dict[Any, Any] = {}  # ref of start() -> actor
        self.running: dict[Any, tuple[Any, int]] = {}  # ref of run() -> (actor, item index)
        self.idle: list[Any] = []
        self.start_deaths = 0
        for _ in range(count):
            self.spawn()

    def spawn(self) -> None:
        actor = self.actor.remote(self.setup)
        self.starting[actor.start.remote()] = actor

    def actors(self) -> list[Any]:
        return [*self.starting.values(), *(a for a, _ in self.running.values()), *self.idle]

    def run(self) -> list[Any]:
        """Every result, in item order; kills every worker when it returns or raises."""
        total = len(self.work.items)
        try:
            with progress_bar(total, self.work.desc, unit=self.work.unit) as bar:
                while len(self.results) < total:
                    self.dispatch()
                    ready, _ = ray.wait([*self.starting, *self.running], num_returns=1)
                    bar.update(sum(self.settle(ref) for ref in ready))
        finally:
            for actor in self.actors():
                ray.kill(actor, no_restart=True)
        return [self.results[i] for i in range(total)]

    def dispatch(self) -> None:
        """Give every idle worker the first queued item it may take; once the queue is empty,
        let the idle and starting workers go: their GPUs serve other stages (``make -j``)."""
        for actor in list(self.idle):
            index = self.take(actor)
            if index is None:
                continue
            self.idle.remove(actor)
            self.running[actor.run.remote(self.work.items[index])] = (actor, index)
        if not self.queue:
            for actor in [*self.idle, *self.starting.values()]:
                ray.kill(actor, no_restart=True)
            self.idle.clear()
            self.starting.clear()

    def take(self, actor: Any) -> int | None:
        """The first queued item not to avoid on ``actor`` (an item that failed there), any
        item when ``actor`` is the only worker."""
        alone = len(self.actors()) == 1
        for position, (index, avoid) in enumerate(self.queue):
            if avoid is not actor or alone:
                del self.queue[position]
                return index
        return None

    def settle(self, ref: Any) -> int:
        """Take the outcome of a finished call; 1 when it finished an item."""
        if ref in self.starting:
            self.started(ref, self.starting.pop(ref))
            return 0
        actor, index = self.running.pop(ref)
        try:
            self.results[index] = ray.get(ref)
        except RayTaskError as exc:
            self.failed(actor, index, exc)
            return 0
        except RayActorError as exc:
            self.died(index, exc)
            return 0
        self.idle.append(actor)
        return 1

    def started(self, ref: Any, actor: Any) -> None:
        """A worker's setup ended: it is idle, or its error stops the work (setup errors are
        the settings' or the inputs', the same on every worker)."""
        try:
            ray.get(ref)
        except RayTaskError as exc:
            raise exc.cause from None
        except RayActorError as exc:
            self.start_deaths += 1
            if self.start_deaths >= DEATHS:
                raise WorkerLost(
                    f"{self.work.desc}: Ray workers died while starting; last: {first_line(exc)}"
                ) from None
            self.spawn()
            return
        self.idle.append(actor)

    def failed(self, actor: Any, index: int, exc: RayTaskError) -> None:
        """The task raised on item ``index``: once more on another worker, then stop."""
        self.failures[index] += 1
        if self.failures[index] >= ATTEMPTS:
            raise exc.cause from None
        say(f"{describe(self.work, index)} failed ({exc.cause}); trying it once more")
        self.queue.appendleft((index, actor))
        self.idle.append(actor)

    def died(self, index: int, exc: RayActorError) -> None:
        """The worker died on item ``index``: replace it, and queue the item first."""
        self.deaths[index] += 1
        what = describe(self.work, index)
        if self.deaths[index] >= DEATHS:
            raise WorkerLost(f"{what}: its Ray worker died {DEATHS} times; last: {first_line(exc)}")
        say(f"{what}: its Ray worker died; the {self.work.unit} goes to another worker")
        self.queue.appendleft((index, None))
        self.spawn()


def main_by_reference() -> None:
    """Let the classes and functions of a module run as ``python -m NAME`` (a stage command:
    ``python -m rvos_nn.infer``) travel by reference, as ``NAME``, which the workers import:
    cloudpickle copies what ``__main__`` defines by value, and a class with a
    ``functools.cached_property`` (a lock) cannot be copied."""
    main = sys.modules["__main__"]
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if not name or sys.modules.setdefault(name, main) is not main:
        return
    for value in vars(main).values():
        own = inspect.isclass(value) or inspect.isfunction(value)
        if own and value.__module__ == "__main__":
            value.__module__ = name


def map_on_ray(work: Work) -> list[Any]:
    """``[task(item) for item in work.items]`` on Ray workers (see the module)."""
    if not work.items:
        return []
    main_by_reference()
    connected = connect()
    try:
        gpus = worker_gpus(work)
        count = worker_count(work, gpus, ray.cluster_resources())
        return Scheduler(work, count, gpus).run()
    finally:
        if connected:
            ray.shutdown()

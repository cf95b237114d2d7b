"""The compute seam: stage code asks an executor to map a function over posts in batches, or to run
independent tasks (fits, query blocks); it does not know which executor it got.

    with make_executor(ComputeConfig(executor="ray")) as ex, use_executor(ex):
        ...                                   # library code calls current_executor()

- ``map_batches(fn, items, batch_size, shared=..., workers=...)``: ``items`` (a list, numpy array or
  Arrow table) cut into consecutive batches of ``batch_size``; returns ``[fn(batch) ...]`` in batch
  order. ``fn`` is a function ``fn(batch, **shared)`` or a class: ``fn(**shared)`` is built once
  per worker (one model load) and called per batch.
- ``run_tasks(fn, tasks, shared=...)``: ``[fn(task, **shared) for task in tasks]``, in task order;
  the tasks are independent (fold fits, refits, neighbour query blocks).

``shared`` holds what every call reads (feature matrix, embeddings, an encoder): a distributed
executor ships it once (Ray: one ``ray.put`` each), never per batch or task.

``LocalExecutor`` (the default) is what the code did before the seam: in this process, in order, or
in ``workers`` spawned processes for ``map_batches``; it never imports Ray. ``RayExecutor``
(``featurestore.executor_ray``, the ``[ray]`` extra) runs the same calls on a Ray cluster. Both
give the same results: a batch or task never depends on where or next to what it ran.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Iterator, Protocol, Sequence, runtime_checkable

EXECUTORS = ("local", "ray")


class ExecutorUnavailable(ImportError):
    """The configured executor needs a package that is not installed (no silent fallback to local)."""


@dataclass(frozen=True)
class ComputeConfig:
    """The ``compute`` params section: which executor runs the per-post work and the fits."""

    executor: str = "local"        # local | ray
    ray_address: str | None = None  # a running cluster ("ray://head:10001", "head:6379", "auto"); None: start one here
    num_cpus: int | None = None    # CPUs of a Ray instance started here (None: all); ignored with ray_address
    actors: int | None = None      # Ray Data actors per map (None: one per CPU, or per GPU for GPU work)
    task_cpus: int | None = None   # CPUs a Ray task reserves (None: the driver's thread count, at most a node's CPUs)
    train_storage: str | None = None  # Ray Train checkpoints (data-parallel GBDTs): a path every node can write;
    #                                   None: a temporary directory on the driver's node (one-machine clusters)

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(f"compute.executor must be one of {EXECUTORS}, got {self.executor!r}")
        if self.executor == "local" and self.ray_address is not None:
            raise ValueError("compute.ray_address is set but compute.executor is 'local'; set executor: ray")
        for name in ("num_cpus", "actors", "task_cpus"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"compute.{name} must be >= 1 or null, got {value}")


@runtime_checkable
class Executor(Protocol):
    """What stage code may ask of an executor (see the module docstring)."""

    name: str

    def map_batches(self, fn: Callable, items: Any, batch_size: int, *, shared: dict | None = None,
                    workers: int = 1, gpu: bool = False, on_result: Callable[[int], None] | None = None) -> list:
        """``[fn(batch) for batch in batches(items, batch_size)]`` in batch order; ``on_result(i)`` per batch done."""

    def run_tasks(self, fn: Callable, tasks: Sequence, *, shared: dict | None = None,
                  on_result: Callable[[int], None] | None = None) -> list:
        """``[fn(task, **shared) for task in tasks]`` in task order; ``on_result(i)`` as task i finishes."""

    def connect(self) -> None:
        """Join the cluster, or start the local instance, before the first call (nothing for local)."""

    def close(self) -> None:
        """Release what the executor started (a Ray instance it started itself)."""


def batches(items: Any, batch_size: int) -> list:
    """``items`` (list, numpy array or Arrow table) cut into consecutive slices of ``batch_size``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = items.num_rows if hasattr(items, "num_rows") else len(items)
    if hasattr(items, "num_rows"):
        return [items.slice(i, batch_size) for i in range(0, n, batch_size)]
    return [items[i:i + batch_size] for i in range(0, n, batch_size)]


def is_class(fn: Callable) -> bool:
    """A class (built once per worker, then called per batch) rather than a plain function."""
    return isinstance(fn, type)


_WORKER: list = []  # the instance a spawned local worker built from a class ``fn``


def _init_worker(fn: type, shared: dict) -> None:
    _WORKER[:] = [fn(**shared)]


def _call_worker(batch):
    return _WORKER[0](batch)


class LocalExecutor:
    """Everything in this process, in order; ``map_batches`` may spread batches over spawned processes."""

    name = "local"

    def map_batches(self, fn: Callable, items: Any, batch_size: int, *, shared: dict | None = None,
                    workers: int = 1, gpu: bool = False, on_result: Callable[[int], None] | None = None) -> list:
        """Batches in order; with ``workers`` > 1 and more than one batch, in that many spawned processes
        (a class is built once per process; a crashed process raises ``BrokenProcessPool``)."""
        shared = shared or {}
        parts = batches(items, batch_size)
        pool = None
        if workers > 1 and len(parts) > 1:
            ctx = mp.get_context("spawn")  # a fork of a process whose thread pools have run can hang
            n = min(workers, len(parts))
            if is_class(fn):
                pool = ProcessPoolExecutor(n, ctx, initializer=_init_worker, initargs=(fn, shared))
                call = _call_worker
            else:
                pool, call = ProcessPoolExecutor(n, ctx), partial(fn, **shared)
        else:
            call = fn(**shared) if is_class(fn) else partial(fn, **shared)
        try:
            out = []
            for i, result in enumerate(pool.map(call, parts) if pool else map(call, parts)):  # input order
                out.append(result)
                if on_result is not None:
                    on_result(i)
            return out
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)

    def run_tasks(self, fn: Callable, tasks: Sequence, *, shared: dict | None = None,
                  on_result: Callable[[int], None] | None = None) -> list:
        """The tasks one after the other, in this process."""
        out = []
        for i, task in enumerate(tasks):
            out.append(fn(task, **(shared or {})))
            if on_result is not None:
                on_result(i)
        return out

    def connect(self) -> None:
        """Nothing to join."""

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_executor(cfg: ComputeConfig | None = None) -> Executor:
    """The executor ``cfg`` names; ``ray`` without the ``[ray]`` extra is ``ExecutorUnavailable`` saying so."""
    cfg = cfg or ComputeConfig()
    if cfg.executor == "local":
        return LocalExecutor()
    from featurestore.executor_ray import RayExecutor  # imports ray itself, with a clear error

    return RayExecutor(address=cfg.ray_address, num_cpus=cfg.num_cpus, actors=cfg.actors, task_cpus=cfg.task_cpus,
                       train_storage=cfg.train_storage)


_CURRENT: ContextVar[Executor | None] = ContextVar("smpp_executor", default=None)


def current_executor() -> Executor:
    """The executor of the innermost ``use_executor`` block; a ``LocalExecutor`` outside any."""
    return _CURRENT.get() or LocalExecutor()


@contextlib.contextmanager
def use_executor(executor: Executor) -> Iterator[Executor]:
    """Within the block, ``current_executor()`` is ``executor`` (what ``smpp run`` sets from ``compute``)."""
    token = _CURRENT.set(executor)
    try:
        yield executor
    finally:
        _CURRENT.reset(token)

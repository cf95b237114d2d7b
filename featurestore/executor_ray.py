"""``RayExecutor``: the calls of ``featurestore.executor`` on a Ray cluster (the ``[ray]`` extra).

- ``run_tasks``: one Ray task per task; every ``shared`` value is put in the object store once
  and passed by reference (a worker maps numpy arrays zero-copy, read-only).
- ``map_batches`` with a class: Ray Data, one row per batch (its index and the pickled batch),
  mapped by a pool of actors, each building the class once (one model load per actor) with
  ``num_gpus=1`` when ``gpu`` is asked for and the cluster has GPUs, one CPU otherwise. An actor
  that dies is restarted and its batch retried (Ray Data's default), so the caller must make a
  batch's side effects atomic (``models.extraction`` writes whole shards by rename).
- ``map_batches`` with a function: one Ray task per batch.

Batches are the same slices ``LocalExecutor`` cuts, results come back in batch order, and every
task and actor runs with the driver's thread-pool sizes (``thread_settings``), so the outputs are
those of the local executor. ``ray`` is imported here only, when an executor is made.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import sys
from typing import Any, Callable, Iterator, Sequence

from featurestore.executor import ExecutorUnavailable, batches, is_class

log = logging.getLogger(__name__)

try:
    import ray
except ImportError as e:  # no silent fallback to local: the user asked for Ray
    raise ExecutorUnavailable("compute.executor 'ray' needs the ray extra: pip install 'smpp[ray]' "
                              "(or pip install 'ray[data]')") from e


def thread_settings() -> dict:
    """This process's thread pools: the largest count per ``threadpoolctl`` API (blas, openmp), and torch's
    intra-op count when torch is loaded. A task runs with them, so its floats are the local executor's
    (a Ray worker starts with OMP_NUM_THREADS=1, and a BLAS sum depends on its thread count)."""
    from threadpoolctl import threadpool_info

    out: dict = {}
    for lib in threadpool_info():
        out[lib["user_api"]] = max(out.get(lib["user_api"], 1), lib["num_threads"])
    torch = sys.modules.get("torch")
    return {"pools": out, "torch": torch.get_num_threads() if torch is not None else None}


@contextlib.contextmanager
def with_threads(settings: dict) -> Iterator[None]:
    """Inside the block this process's thread pools are those of ``settings`` (``thread_settings``)."""
    from threadpoolctl import threadpool_limits

    torch = None
    if settings.get("torch"):
        import torch
        before = torch.get_num_threads()
        torch.set_num_threads(settings["torch"])
    try:
        with threadpool_limits(limits=settings["pools"] or None):
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(before)


def _call(fn: Callable, task: Any, threads: dict, keys: tuple[str, ...], *values: Any) -> Any:
    """What a Ray task runs: ``fn(task, **shared)``; top-level ObjectRef arguments arrive resolved."""
    with with_threads(threads):
        return fn(task, **dict(zip(keys, values)))


class _BatchActor:
    """A Ray Data actor: builds ``cls(**shared)`` once, then maps rows (index, pickled batch), both with the
    driver's thread pools."""

    def __init__(self, cls: type, shared: dict, threads: dict):
        values = ray.get(list(shared.values())) if shared else []
        self.threads = threads
        with with_threads(threads):
            self.fn = cls(**dict(zip(shared, values)))

    def __call__(self, rows: dict) -> dict:
        import numpy as np

        with with_threads(self.threads):
            out = [pickle.dumps(self.fn(pickle.loads(p)), protocol=5) for p in rows["payload"]]
        return {"i": np.asarray(rows["i"]), "result": np.asarray(out, dtype=object)}


class RayExecutor:
    """Runs ``map_batches`` / ``run_tasks`` on Ray; connects (or starts a local instance) on first use.

    address: a running cluster (``ray.init(address=...)``); None: a Ray instance started here with
    ``num_cpus`` CPUs (all by default) and no dashboard, shut down by ``close``. A Ray session that
    is already up in this process (a test's, a notebook's) is used as it is and left running.
    actors: Ray Data actors per ``map_batches`` (default: one per cluster CPU, or per GPU).
    task_cpus: CPUs a task reserves (default: the driver's thread count, which every task runs with,
    at most the CPUs of the largest node): no node runs more threads than it has cores.
    train_storage: where Ray Train runs (``models.gbdt_data_parallel``) keep their checkpoints.
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, actors: int | None = None,
                 task_cpus: int | None = None, train_storage: str | None = None):
        self.address, self.num_cpus, self.actors, self.task_cpus = address, num_cpus, actors, task_cpus
        self.train_storage = train_storage
        self._started = False

    def _remote(self) -> tuple[Any, dict]:
        """The remote ``_call`` reserving ``task_cpus`` CPUs, and the thread settings it runs with."""
        threads = thread_settings()
        want = self.task_cpus or max([1, threads["torch"] or 1, *threads["pools"].values()])
        largest = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=1)
        return ray.remote(_call).options(num_cpus=max(1, min(want, int(largest)))), threads

    def connect(self) -> None:
        """Join the cluster (or start the local instance) unless this process is already connected."""
        if ray.is_initialized():
            return
        if self.address is not None:
            ray.init(address=self.address, log_to_driver=False)
        else:
            # "local": a new instance here, whatever RAY_ADDRESS names (the CLI has read it already)
            ray.init(address="local", num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False)
        self._started = True
        log.info("ray: %s", ray.cluster_resources())

    def _put_shared(self, shared: dict | None) -> tuple[tuple[str, ...], list]:
        shared = shared or {}
        return tuple(shared), [ray.put(v) for v in shared.values()]

    def run_tasks(self, fn: Callable, tasks: Sequence, *, shared: dict | None = None,
                  on_result: Callable[[int], None] | None = None) -> list:
        """One Ray task per task, the shared values in the object store once; results in task order."""
        self.connect()
        keys, refs = self._put_shared(shared)
        remote, threads = self._remote()
        pending = {remote.remote(fn, task, threads, keys, *refs): i for i, task in enumerate(tasks)}
        return self._gather(pending, on_result)

    def _gather(self, pending: dict, on_result: Callable[[int], None] | None) -> list:
        out: list = [None] * len(pending)
        waiting = list(pending)
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            i = pending[done[0]]
            out[i] = ray.get(done[0])
            if on_result is not None:
                on_result(i)
        return out

    def map_batches(self, fn: Callable, items: Any, batch_size: int, *, shared: dict | None = None,
                    workers: int = 1, gpu: bool = False, on_result: Callable[[int], None] | None = None) -> list:
        """Batches as ``LocalExecutor`` cuts them; a class through a Ray Data actor pool, a function as tasks.

        ``workers`` is the local executor's process count and means nothing here; ``gpu``: the
        class can use a GPU (its actors get one each when the cluster has any).
        """
        self.connect()
        parts = batches(items, batch_size)
        if not parts:
            return []
        if not is_class(fn):
            keys, refs = self._put_shared(shared)
            remote, threads = self._remote()
            return self._gather({remote.remote(fn, p, threads, keys, *refs): i for i, p in enumerate(parts)},
                                on_result)
        return self._map_actors(fn, parts, shared, gpu, on_result)

    def _map_actors(self, cls: type, parts: list, shared: dict | None, gpu: bool,
                    on_result: Callable[[int], None] | None) -> list:
        import ray.data

        refs = {k: ray.put(v) for k, v in (shared or {}).items()}
        gpus = int(ray.cluster_resources().get("GPU", 0)) if gpu else 0
        size = self.actors or (gpus or max(1, int(ray.cluster_resources().get("CPU", 1))))
        resources = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        ray.data.DataContext.get_current().enable_progress_bars = False
        ds = ray.data.from_items([{"i": i, "payload": pickle.dumps(p, protocol=5)} for i, p in enumerate(parts)],
                                 override_num_blocks=len(parts))
        mapped = ds.map_batches(_BatchActor, fn_constructor_kwargs={"cls": cls, "shared": refs,
                                                                    "threads": thread_settings()}, batch_size=1,
                                concurrency=min(size, len(parts)), batch_format="numpy", **resources)
        out: list = [None] * len(parts)
        for row in mapped.iter_rows():
            i = int(row["i"])
            out[i] = pickle.loads(row["result"])
            if on_result is not None:
                on_result(i)
        return out

    def close(self) -> None:
        """Shut down the Ray instance this executor started (not one it found running)."""
        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

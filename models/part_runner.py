"""Independent calls (a stack's model calls for a served request) spread over two threads.

A served post's model step is a handful of independent single-row predictions (the base
learners, the two quantile models), each a native call that releases the GIL. One after another
they take the whole step's time and evict each other's trees from the one core's cache; on two
threads, each with its own core, the step takes about the longer thread's share (one post at
486,194 stored posts: 6.3 -> 4.3 ms median, BENCHMARKS.md "Serving").

``PartRunner`` keeps each call's cost (a moving average of its measured seconds, by name) and
splits every batch of calls by longest-processing-time: the costliest call first, each to the
thread with less work so far. The side thread is one persistent worker that waits on a queue
(no spinning). Outputs do not depend on the split: every call is the same call wherever it runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

SMOOTHING = 0.2  # weight of the newest measurement in a call's cost


class PartRunner:
    """``run(calls)``: name -> zero-argument callable in, name -> its result out, over two threads."""

    def __init__(self) -> None:
        self.cost: dict[str, float] = {}  # name -> seconds (moving average)
        self._side = ThreadPoolExecutor(1, thread_name_prefix="part-runner")

    def split(self, names: list[str]) -> tuple[list[str], list[str]]:
        """(this thread's names, the side thread's) by longest processing time first; a name never
        measured costs the most measured one (it is measured on its first run)."""
        default = max(self.cost.values(), default=1.0)
        load, groups = [0.0, 0.0], ([], [])
        for name in sorted(names, key=lambda n: -self.cost.get(n, default)):
            side = int(load[1] < load[0])
            groups[side].append(name)
            load[side] += self.cost.get(name, default)
        return groups

    def _timed(self, calls: dict[str, Callable], names: list[str]) -> dict[str, tuple[object, float]]:
        out = {}
        for name in names:
            t0 = time.perf_counter()
            out[name] = (calls[name](), time.perf_counter() - t0)
        return out

    def run(self, calls: dict[str, Callable]) -> dict:
        """Every call's result, by name; an exception in any call is raised after both threads are done."""
        here, there = self.split(list(calls))
        pending = self._side.submit(self._timed, calls, there) if there else None
        try:
            done = self._timed(calls, here)
        finally:
            done_there = pending.result() if pending is not None else {}
        done |= done_there
        for name, (_, seconds) in done.items():
            old = self.cost.get(name)
            self.cost[name] = seconds if old is None else (1 - SMOOTHING) * old + SMOOTHING * seconds
        return {name: done[name][0] for name in calls}

    def close(self) -> None:
        self._side.shutdown(wait=False)

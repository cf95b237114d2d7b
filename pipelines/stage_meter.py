"""What a stage costs: wall time, CPU time (this process and its worker processes) and peak RSS
of the whole process tree, sampled while the stage runs.

``ru_maxrss`` is a lifetime maximum, so it cannot give one stage's peak inside a long run; a
sampler thread reads the resident set of this process and every descendant from /proc (Linux)
every ``interval`` seconds instead. Where /proc is absent the peak falls back to this process's
``ru_maxrss`` and says so (``rss_source``).
"""

from __future__ import annotations

import os
import resource
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass
class StageCost:
    wall_s: float = 0.0
    cpu_s: float = 0.0          # user + system, this process and waited-for children
    peak_rss_mb: float = 0.0    # the process tree's largest sampled resident set
    rss_source: str = "proc"
    extra: dict = field(default_factory=dict)


def _children(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        out += [int(k) for k in kids]
        todo += [int(k) for k in kids]
    return out


def tree_rss_mb(pid: int | None = None) -> float:
    """Resident set of ``pid`` (default: this process) plus all its descendants, in MiB."""
    total = 0
    for p in [pid or os.getpid(), *_children(pid or os.getpid())]:
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
    return total / 2**20


def _cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@contextmanager
def measure(interval: float = 0.5) -> Iterator[StageCost]:
    """``with measure() as cost: ...`` fills ``cost`` when the block ends (also on an exception)."""
    cost = StageCost()
    proc = Path("/proc/self/statm").is_file()
    peak = [tree_rss_mb() if proc else 0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(interval):
            peak[0] = max(peak[0], tree_rss_mb())

    thread = threading.Thread(target=sample, daemon=True) if proc else None
    t0, c0 = time.perf_counter(), _cpu_seconds()
    if thread:
        thread.start()
    try:
        yield cost
    finally:
        stop.set()
        if thread:
            thread.join()
            peak[0] = max(peak[0], tree_rss_mb())
        cost.wall_s = round(time.perf_counter() - t0, 2)
        cost.cpu_s = round(_cpu_seconds() - c0, 2)
        if proc:
            cost.peak_rss_mb = round(peak[0], 1)
        else:
            cost.peak_rss_mb, cost.rss_source = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), \
                "ru_maxrss (lifetime)"

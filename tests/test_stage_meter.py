"""pipelines.stage_meter: wall and CPU time and the process tree's peak RSS of a block."""

from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np
import pytest

from pipelines.stage_meter import measure, tree_rss_mb

pytestmark = pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="needs Linux /proc")


def _hold(mb: int, seconds: float) -> None:
    block = np.ones(mb * 2**20 // 8)  # touched: resident
    time.sleep(seconds)
    del block


def test_peak_rss_sees_a_large_allocation_that_is_freed_again():
    base = tree_rss_mb()
    with measure(interval=0.05) as cost:
        _hold(300, 0.4)
    assert cost.peak_rss_mb > base + 250 and tree_rss_mb() < base + 150


def test_peak_rss_counts_worker_processes_and_cpu_counts_busy_time():
    with measure(interval=0.05) as cost:
        p = mp.get_context("spawn").Process(target=_hold, args=(200, 1.0))
        p.start()
        p.join()
        t0 = time.process_time()
        while time.process_time() - t0 < 0.3:
            pass
    assert cost.peak_rss_mb > 200 and cost.wall_s >= 1.0 and cost.cpu_s >= 0.3

"""The one-post neighbour search's cost per projection rank, from a finished run's stored embedding.

Builds ``featurestore.sequence_online.NeighbourLookup`` once per ``--ranks`` entry from the same
stored rows (the full width, e.g. 160, is the baseline: its candidate pass reads every stored
float), then, in alternating rounds so that a busy machine slows every rank alike, replays the
``--n`` latest stored posts one at a time and all at once, on one BLAS thread. Every rank must
return identical neighbours and similarities (checked). Prints one line per rank and round.

    python -m benchmarks.bench_neighbour_lookup --root RUN [--ranks 160,64,48] [--n 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.machine import cpu_model
from featurestore.config import config_from_dict
from featurestore.features_sequence import SequenceConfig, sequence_inputs
from featurestore.paths import Paths
from featurestore.sequence_online import NeighbourLookup
from pipelines.manifest import open_run


def _load() -> str:
    """The 1-minute load average (other work on the box slows every rank alike)."""
    return Path("/proc/loadavg").read_text().split()[0]


def _same(a, b) -> bool:
    return all((x[0] == y[0]).all() and np.array_equal(x[1], y[1], equal_nan=True) for x, y in zip(a, b))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("."), help="work root of a finished run (default: .)")
    ap.add_argument("--ranks", default="160,64,48", help="projection ranks, comma-separated (default: 160,64,48)")
    ap.add_argument("--n", type=int, default=40, help="latest stored posts replayed (default: 40)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default: 3)")
    args = ap.parse_args(argv)
    run = open_run(args.root, None, None, need_smpd=False)
    cfg = config_from_dict(SequenceConfig, "features_sequence", run.params.get("features_sequence"))
    frame, emb = sequence_inputs(Paths(root=args.root, smpd=run.smpd_dir), cfg)
    pid, date = frame["pid"].to_numpy(), frame["postdate"].to_numpy()
    uid, y = frame["uid"].to_numpy(), frame["y_visible"].fill_null(np.nan).to_numpy()
    print(f"{len(pid)} stored posts, {emb.shape[1]}-d, k={cfg.k}; {cpu_model()}; load average "
          f"{_load()}")
    lookups = {}
    for rank in map(int, args.ranks.split(",")):
        t0 = time.perf_counter()
        lookups[rank] = NeighbourLookup(cfg, pid, date, uid, y, emb, projection_rank=rank)
        print(f"rank {rank}: built in {time.perf_counter() - t0:.2f} s")
    last = np.argsort(date, kind="stable")[-args.n:]
    found: dict[int, list] = {}
    with threadpool_limits(1):
        for rnd in range(args.rounds):
            for rank, lookup in lookups.items():
                times = []
                for i in last:
                    t0 = time.perf_counter()
                    got = lookup.neighbours(pid[i:i + 1], date[i:i + 1], emb[i:i + 1])[0]
                    times.append(time.perf_counter() - t0)
                    if rnd == 0:
                        found.setdefault(rank, []).append(got)
                t0 = time.perf_counter()
                lookup.neighbours(pid[last], date[last], emb[last])
                t_all = time.perf_counter() - t0
                print(f"round {rnd} rank {rank}: one post p50 {1000 * np.median(times):.1f} ms, "
                      f"p95 {1000 * np.percentile(times, 95):.1f} ms; {args.n} posts in one call "
                      f"{1000 * t_all:.0f} ms (load {_load()})")
    base = next(iter(found.values()))
    bad = [rank for rank, got in found.items() if not _same(base, got)]
    if bad:
        raise SystemExit(f"ranks {bad} returned other neighbours than rank {next(iter(found))}")
    print("every rank returned identical neighbours and similarities")


if __name__ == "__main__":
    main()
